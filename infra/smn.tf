# Optional SMN topic for the smn channel: the agency may publish to topics, and do nothing
# else in SMN; subscribers come from var.smn_subscriptions.

resource "huaweicloud_smn_topic" "reports" {
  count        = var.create_smn_topic ? 1 : 0
  name         = "${var.function_name}-reports"
  display_name = "DRS status reports"
}

resource "huaweicloud_identity_role" "smn_publish" {
  count       = var.create_smn_topic ? 1 : 0
  name        = "${var.function_name}-smn-publish"
  description = "drs-report: publish its reports to SMN"
  type        = "XA"
  policy = jsonencode({
    Version = "1.1"
    Statement = [{
      Effect = "Allow"
      Action = ["smn:topic:publish"]
    }]
  })
}

resource "huaweicloud_smn_subscription" "reports" {
  for_each  = var.create_smn_topic ? { for s in var.smn_subscriptions : "${s.protocol}:${s.endpoint}" => s } : {}
  topic_urn = huaweicloud_smn_topic.reports[0].topic_urn
  protocol  = each.value.protocol
  endpoint  = each.value.endpoint
  remark    = "drs-report"
}
