# The function reads DRS progress with the temporary credentials of this agency:
# read-only DRS access, plus SMN publishing when the topic is created.
resource "huaweicloud_identity_agency" "drs_report" {
  name                   = "${var.function_name}-agency"
  description            = "drs-report: read DRS job progress, publish reports"
  delegated_service_name = "op_svc_cff"

  project_role {
    project = var.region
    roles   = var.create_smn_topic ? ["DRS ReadOnlyAccess", "SMN FullAccess"] : ["DRS ReadOnlyAccess"]
  }
}

resource "huaweicloud_fgs_function" "drs_report" {
  name          = var.function_name
  app           = "default"
  description   = "drs-report: DRS status reports and alerts"
  handler       = "index.handler"
  runtime       = var.runtime
  memory_size   = var.memory_size
  timeout       = var.timeout
  code_type     = "zip"
  code_filename = "drs-report-function.zip"
  func_code     = filebase64(var.package_path)
  agency        = huaweicloud_identity_agency.drs_report.name

  user_data = jsonencode(merge(
    { DRS_REPORT_CONFIG = "config.toml" },
    var.create_smn_topic ? { DRS_REPORT_SMN_TOPIC_URN = huaweicloud_smn_topic.reports[0].topic_urn } : {},
    var.settings,
  ))
  encrypted_user_data = jsonencode(merge(var.secrets, local.web_secret_settings))
}

resource "huaweicloud_fgs_function_trigger" "timer" {
  function_urn = huaweicloud_fgs_function.drs_report.urn
  type         = "TIMER"
  status       = "ACTIVE"
  event_data = jsonencode({
    name          = "${var.function_name}-timer"
    schedule_type = var.schedule_type
    schedule      = var.schedule
    user_event    = var.user_event
  })
}

resource "huaweicloud_smn_topic" "reports" {
  count        = var.create_smn_topic ? 1 : 0
  name         = "${var.function_name}-reports"
  display_name = "DRS status reports"
}
