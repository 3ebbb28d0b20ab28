# The HTTP side (chat-ops commands, the report archive) behind a dedicated API Gateway:
# one group, one API that hands every method and path under / to the function (the
# application routes and authenticates itself: Slack, DingTalk and Feishu signatures, the
# archive's bearer token or signed links), published to the built-in RELEASE environment.
# Off unless apig_instance_id names an existing APIG instance.

variable "apig_instance_id" {
  description = "ID of an existing dedicated API Gateway instance to serve chat-ops and the archive; empty for none."
  type        = string
  default     = ""
  validation {
    condition     = var.apig_instance_id == "" || can(regex("^[0-9a-f]{32}$", var.apig_instance_id))
    error_message = "apig_instance_id must be empty or the 32 hex digits of an APIG instance ID."
  }
}

variable "apig_group_name" {
  description = "Name of the API group that holds the drs-report API."
  type        = string
  default     = "drs_report"
  validation {
    condition     = can(regex("^[A-Za-z][A-Za-z0-9_]{2,63}$", var.apig_group_name))
    error_message = "apig_group_name: 3 to 64 letters, digits or _, starting with a letter."
  }
}

variable "apig_timeout_ms" {
  description = "How long APIG waits for the function, in ms; Slack gives up after 3,000."
  type        = number
  default     = 5000
  validation {
    condition     = var.apig_timeout_ms >= 1000 && var.apig_timeout_ms <= 60000
    error_message = "apig_timeout_ms must be between 1000 and 60000."
  }
}

variable "web_secrets" {
  description = "The [web] secrets, stored encrypted as DRS_REPORT_WEB_<KEY>: token, link_secret, slack_signing_secret, dingtalk_secret, feishu_app_secret, feishu_verification_token, feishu_encrypt_key."
  type        = map(string)
  default     = {}
  sensitive   = true
  validation {
    condition = alltrue([for key in keys(var.web_secrets) : contains([
      "token", "link_secret", "slack_signing_secret", "dingtalk_secret", "feishu_app_secret",
    "feishu_verification_token", "feishu_encrypt_key"], key)])
    error_message = "web_secrets keys: token, link_secret, slack_signing_secret, dingtalk_secret, feishu_app_secret, feishu_verification_token, feishu_encrypt_key."
  }
}

locals {
  apig_enabled = var.apig_instance_id != ""
  # Encrypted settings reach the code only through context.getUserData, which is where
  # drs-report looks up every DRS_REPORT_<SECTION>_<KEY>.
  web_secret_settings = { for key, value in var.web_secrets : "DRS_REPORT_WEB_${upper(key)}" => value }
}

resource "huaweicloud_apig_group" "drs_report" {
  count       = local.apig_enabled ? 1 : 0
  instance_id = var.apig_instance_id
  name        = var.apig_group_name
  description = "drs-report: chat-ops commands and the report archive"
}

resource "huaweicloud_apig_api" "drs_report" {
  count                   = local.apig_enabled ? 1 : 0
  instance_id             = var.apig_instance_id
  group_id                = huaweicloud_apig_group.drs_report[0].id
  name                    = "drs_report_http"
  description             = "Every path under / to the drs-report function, which authenticates each route itself"
  type                    = "Public"
  request_protocol        = "HTTPS"
  request_method          = "ANY"
  request_path            = "/"
  matching                = "Prefix"
  security_authentication = "NONE"
  is_send_fg_body_base64  = true

  func_graph {
    function_urn    = huaweicloud_fgs_function.drs_report.urn
    invocation_type = "sync"
    timeout         = var.apig_timeout_ms
  }
}

resource "huaweicloud_apig_api_publishment" "drs_report" {
  count       = local.apig_enabled ? 1 : 0
  instance_id = var.apig_instance_id
  api_id      = huaweicloud_apig_api.drs_report[0].id
  env_id      = "DEFAULT_ENVIRONMENT_RELEASE_ID"
  description = "drs-report HTTP side"
}

output "apig_group_id" {
  description = "ID of the API group (empty unless apig_instance_id); bind your domain to it and set web.base_url to that domain."
  value       = local.apig_enabled ? huaweicloud_apig_group.drs_report[0].id : ""
}
