# The function, its agency and its timers. Networking (network.tf), the history (obs.tf,
# rds.tf) and SMN (smn.tf) add to the locals below; every name a user sees starts with
# var.function_name.

locals {
  on_vpc      = var.vpc_id != "" && var.subnet_id != ""
  use_obs     = var.history_store == "obs"
  store_url   = "obs://${var.store_bucket}/${var.store_object_key}"
  working_db  = "sqlite:////tmp/drs-report/history.db"
  rds_enabled = var.create_rds && var.history_store == "postgresql"

  # Plain settings the module owns; the user's var.settings may not override them.
  module_settings = merge(
    # The SQLite working copy must be in /tmp: the code directory is read-only.
    local.use_obs || var.history_store == "ephemeral" ? { DRS_REPORT_STORE_URL = local.working_db } : {},
    local.use_obs ? { DRS_REPORT_STORE_SYNC = local.store_url } : {},
    local.use_obs && var.obs_endpoint != "" ? { DRS_REPORT_STORE_OBS_ENDPOINT = var.obs_endpoint } : {},
    var.history_store == "ephemeral" ? { DRS_REPORT_STORE_EPHEMERAL = "true" } : {},
    var.create_smn_topic ? { DRS_REPORT_SMN_TOPIC_URN = huaweicloud_smn_topic.reports[0].topic_urn } : {},
  )
  user_data = merge(var.settings, local.module_settings)
  encrypted_user_data = merge(
    var.secrets,
    local.rds_enabled ? { DRS_REPORT_STORE_URL = local.rds_url } : {},
    local.web_secret_settings,
  )

  # The IAM projects whose DRS jobs the function reads: by default the function's own
  # (a region's default project is named after the region).
  drs_projects = var.drs_projects == null ? [var.region] : var.drs_projects

  # Project-level roles in the function's own project; OBS is a global service, so its role
  # is granted on the account (domain_roles).
  project_roles = concat(
    contains(local.drs_projects, var.region) ? ["DRS ReadOnlyAccess"] : [],
    local.on_vpc ? [huaweicloud_identity_role.vpc_access[0].name] : [],
    var.create_smn_topic ? [huaweicloud_identity_role.smn_publish[0].name] : [],
  )
  # Every project the agency gets a role in: DRS read rights in each of drs_projects, the
  # function's own project with the roles above (omitted when it has none).
  agency_project_roles = merge(
    { for p in local.drs_projects : p => ["DRS ReadOnlyAccess"] },
    length(local.project_roles) > 0 ? { (var.region) = local.project_roles } : {},
  )
  domain_roles = local.use_obs ? [huaweicloud_identity_role.store_objects[0].name] : []
}

# FunctionGraph offers different runtimes in different regions: fail at plan, not apply.
data "huaweicloud_fgs_runtime_types" "offered" {}

# The function reads DRS progress (in each of drs_projects; and writes its history, publishes
# to SMN) with this agency's temporary credentials; nothing else.
resource "huaweicloud_identity_agency" "drs_report" {
  name                   = "${var.function_name}-agency"
  description            = "drs-report: read DRS job progress; its own history objects, VPC port and SMN topic"
  delegated_service_name = "op_svc_cff"
  domain_roles           = local.domain_roles

  # The agency's temporary credentials sign DRS requests for each of these projects.
  dynamic "project_role" {
    for_each = local.agency_project_roles
    content {
      project = project_role.key
      roles   = project_role.value
    }
  }
}

resource "huaweicloud_lts_group" "drs_report" {
  group_name  = "${var.function_name}-logs"
  ttl_in_days = var.log_retention_days
}

resource "huaweicloud_lts_stream" "drs_report" {
  group_id    = huaweicloud_lts_group.drs_report.id
  stream_name = var.function_name
  ttl_in_days = var.log_retention_days
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

  # One instance with the OBS-synced store: OBS has no conditional write, so two instances
  # could each write back their own copy of the history.
  max_instance_num = tostring(var.max_instance_num)

  vpc_id     = local.on_vpc ? var.vpc_id : null
  network_id = local.on_vpc ? var.subnet_id : null

  enable_lts_log  = true
  log_group_id    = huaweicloud_lts_group.drs_report.id
  log_group_name  = huaweicloud_lts_group.drs_report.group_name
  log_stream_id   = huaweicloud_lts_stream.drs_report.id
  log_stream_name = huaweicloud_lts_stream.drs_report.stream_name

  # The config itself is config.toml in the zip (`drs-report package --config`); these
  # fill its ${NAME}s and DRS_REPORT_<SECTION>_<KEY> settings.
  user_data           = jsonencode(local.user_data)
  encrypted_user_data = jsonencode(local.encrypted_user_data)

  lifecycle {
    precondition {
      condition     = contains([for t in data.huaweicloud_fgs_runtime_types.offered.types : t.type], var.runtime)
      error_message = "FunctionGraph does not offer runtime ${var.runtime} in ${var.region}; set runtime = \"Python3.10\" and build the zip with `drs-report package --python 3.10`."
    }
    precondition {
      condition     = length(local.user_data) <= 20 && length(jsonencode(local.user_data)) <= 4096
      error_message = "The function's user data (settings plus the module's own keys) must be at most 20 keys and 4 KB; move values into the config file."
    }
    precondition {
      condition     = length(local.encrypted_user_data) <= 20 && length(jsonencode(local.encrypted_user_data)) <= 4096
      error_message = "The function's encrypted user data (secrets plus the database URL) must be at most 20 keys and 4 KB."
    }
    precondition {
      condition     = !local.use_obs || var.max_instance_num == 1
      error_message = "history_store = \"obs\" needs max_instance_num = 1: OBS has no conditional write, so a second instance could overwrite the history."
    }
    precondition {
      condition     = !local.use_obs || var.store_bucket != ""
      error_message = "history_store = \"obs\" needs store_bucket: the name of a bucket to create (create_store_bucket) or of your existing one."
    }
    precondition {
      condition     = (var.vpc_id == "") == (var.subnet_id == "")
      error_message = "vpc_id and subnet_id go together: set both to attach the function to a VPC, or neither."
    }
    precondition {
      condition     = var.history_store != "postgresql" || var.create_rds || contains(nonsensitive(keys(var.secrets)), "DRS_REPORT_STORE_URL")
      error_message = "history_store = \"postgresql\" needs create_rds = true, or your database URL as secrets[\"DRS_REPORT_STORE_URL\"]."
    }
  }

  # The function must not run before its egress exists (a VPC without NAT has no internet).
  depends_on = [huaweicloud_nat_snat_rule.egress]
}

# Timer invocations are asynchronous: say how often to retry one and how stale one may get,
# rather than inherit defaults the documents disagree on.
resource "huaweicloud_fgs_async_invoke_configuration" "drs_report" {
  function_urn                   = huaweicloud_fgs_function.drs_report.urn
  max_async_retry_attempts       = var.max_async_retry_attempts
  max_async_event_age_in_seconds = var.max_async_event_age_seconds
}

resource "huaweicloud_fgs_function_trigger" "timer" {
  for_each = { for t in var.timers : t.name => t }

  function_urn = huaweicloud_fgs_function.drs_report.urn
  type         = "TIMER"
  status       = "ACTIVE"
  event_data = jsonencode({
    name          = each.key
    schedule_type = each.value.schedule_type
    # Without CRON_TZ= a Cron schedule runs in the region's time zone.
    schedule   = each.value.schedule_type == "Cron" ? "CRON_TZ=${var.time_zone} ${each.value.schedule}" : each.value.schedule
    user_event = each.value.user_event
  })
}
