# Every limit FunctionGraph, IAM, OBS, SMN and RDS document is checked here, so a bad value
# fails at `terraform plan` with the limit in the message instead of at apply or on the
# first timer tick. Validations refer to their own variable only: the file is checked alone.

# --- The function -------------------------------------------------------------------------

variable "region" {
  description = "Region of the DRS jobs and of the function, e.g. cn-north-4."
  type        = string
  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]+$", var.region))
    error_message = "region must be a region name such as cn-north-4."
  }
}

variable "drs_projects" {
  description = "IAM projects whose DRS jobs the function reads: the agency gets DRS ReadOnlyAccess in each. A region's default project is named after it (cn-north-4), a subproject <region>_<name> (cn-north-4_prod). Unset: the function's own project (region) only. Each config [[drs.targets]] of this account needs its project here."
  type        = list(string)
  default     = null
  validation {
    condition     = var.drs_projects == null ? true : length(var.drs_projects) > 0
    error_message = "drs_projects must list at least one project, such as [\"cn-north-4\"]; leave it unset for the function's own project (region) only."
  }
  validation {
    # IAM: a region's name, optionally _ and a subproject's letters, digits, - and _; 64 at most.
    condition     = alltrue([for p in var.drs_projects == null ? [] : var.drs_projects : can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]+(_[A-Za-z0-9_-]+)?$", p)) && try(length(p) <= 64, false)])
    error_message = "Each drs_projects entry must be an IAM project name: a region such as cn-north-4, or a subproject such as cn-north-4_prod (letters, digits, - and _ after the region's _), at most 64 characters."
  }
  validation {
    condition     = alltrue([for p in var.drs_projects == null ? [] : var.drs_projects : !can(regex("^[0-9a-f]{32}$", p))])
    error_message = "drs_projects takes project names (IAM console > Projects, e.g. cn-north-4), not project IDs; the IDs go in the config's [[drs.targets]] project_id."
  }
  validation {
    condition     = var.drs_projects == null ? true : length(distinct(var.drs_projects)) == length(var.drs_projects)
    error_message = "drs_projects must not list a project twice."
  }
}

variable "function_name" {
  description = "Name of the FunctionGraph function; also the prefix of the agency, roles, log group and topic."
  type        = string
  default     = "drs-report"
  validation {
    # FunctionGraph: a letter first, letters, digits, _ and -, not ending in either, at most 60.
    condition     = can(regex("^[A-Za-z]([A-Za-z0-9_-]*[A-Za-z0-9])?$", var.function_name))
    error_message = "function_name must start with a letter, hold only letters, digits, _ and -, and not end with _ or -."
  }
  validation {
    # The agency is "<function_name>-agency" and IAM allows 64 characters: 64 - 7 = 57.
    condition     = length(var.function_name) <= 57
    error_message = "function_name must be at most 57 characters: FunctionGraph allows 60, and the agency \"<function_name>-agency\" must fit IAM's 64."
  }
}

variable "package_path" {
  description = "The zip built by `drs-report package --config config.toml` (default: the repository root)."
  type        = string
  default     = "../drs-report-function.zip"
  validation {
    condition     = endswith(var.package_path, ".zip")
    error_message = "package_path must be the .zip that `drs-report package` wrote."
  }
}

variable "runtime" {
  description = "FunctionGraph Python runtime; build the zip with the matching --python (3.12 or 3.10). Plan fails when the region does not offer it."
  type        = string
  default     = "Python3.12"
  validation {
    condition     = contains(["Python3.10", "Python3.12"], var.runtime)
    error_message = "runtime must be Python3.12 or Python3.10 (the runtimes `drs-report package --python` builds for)."
  }
}

variable "memory_size" {
  description = "Memory of the function in MB, one of FunctionGraph's sizes; 256 holds a 1,000-job run."
  type        = number
  default     = 256
  validation {
    condition     = contains([128, 256, 512, 768, 1024, 1280, 1536, 1792, 2048, 2560, 3072, 3584, 4096], var.memory_size)
    error_message = "memory_size must be one of FunctionGraph's sizes: 128, 256, 512, 768, 1024, 1280, 1536, 1792, 2048, 2560, 3072, 3584 or 4096 (MB)."
  }
}

variable "timeout" {
  description = "Function timeout in seconds; the run stops fetching run.safety_margin_seconds before it."
  type        = number
  default     = 120
  validation {
    condition     = var.timeout >= 3 && var.timeout <= 900 && floor(var.timeout) == var.timeout
    error_message = "timeout must be a whole number of seconds from 3 to 900 (a timer run needs no more; FunctionGraph's own maximum is higher)."
  }
}

variable "max_instance_num" {
  description = "Most instances of the function at once. Must be 1 with history_store = \"obs\": OBS has no conditional write, so one instance is what keeps two runs from overwriting each other's history."
  type        = number
  default     = 1
  validation {
    condition     = var.max_instance_num == -1 || (var.max_instance_num >= 1 && var.max_instance_num <= 1000 && floor(var.max_instance_num) == var.max_instance_num)
    error_message = "max_instance_num must be 1 to 1000, or -1 for no limit (0 would disable the function)."
  }
}

variable "max_async_retry_attempts" {
  description = "How often FunctionGraph retries a timer invocation that crashed or timed out (0-3). The function returns normally from every failure it handles, so only those are retried, and the store's exactly-once claims make a retry send nothing twice."
  type        = number
  default     = 1
  validation {
    condition     = contains([0, 1, 2, 3], var.max_async_retry_attempts)
    error_message = "max_async_retry_attempts must be 0, 1, 2 or 3."
  }
}

variable "max_async_event_age_seconds" {
  description = "Drop a timer invocation that waited longer than this (1-86400 s). 900 s: an alert tick older than that is superseded by the next ones, and a late digest is still worth sending."
  type        = number
  default     = 900
  validation {
    condition     = var.max_async_event_age_seconds >= 1 && var.max_async_event_age_seconds <= 86400 && floor(var.max_async_event_age_seconds) == var.max_async_event_age_seconds
    error_message = "max_async_event_age_seconds must be a whole number from 1 to 86400."
  }
}

variable "log_retention_days" {
  description = "Days LTS keeps the function's logs."
  type        = number
  default     = 30
  validation {
    condition     = var.log_retention_days >= 1 && var.log_retention_days <= 365 && floor(var.log_retention_days) == var.log_retention_days
    error_message = "log_retention_days must be a whole number from 1 to 365."
  }
}

# --- Timers -------------------------------------------------------------------------------

variable "timers" {
  description = "Timer triggers: name, schedule_type (Rate or Cron), schedule, and user_event (a JSON object of overrides such as {\"mode\": \"alert\"}). Cron schedules run in time_zone."
  type = list(object({
    name          = string
    schedule_type = string
    schedule      = string
    user_event    = optional(string, "")
  }))
  default = [
    { name = "drs-report-alerts", schedule_type = "Rate", schedule = "10m", user_event = "{\"mode\": \"alert\"}" },
    { name = "drs-report-digest", schedule_type = "Cron", schedule = "0 0 8 * * ?", user_event = "{\"mode\": \"digest\"}" },
  ]
  validation {
    condition     = length(var.timers) >= 1 && length(var.timers) <= 10
    error_message = "timers must hold 1 to 10 triggers."
  }
  validation {
    condition     = alltrue([for t in var.timers : can(regex("^[A-Za-z][A-Za-z0-9_-]{0,63}$", t.name))])
    error_message = "Each timer name must start with a letter and be at most 64 letters, digits, _ or -."
  }
  validation {
    condition     = length(distinct([for t in var.timers : t.name])) == length(var.timers)
    error_message = "Timer names must differ from each other."
  }
  validation {
    condition     = alltrue([for t in var.timers : contains(["Rate", "Cron"], t.schedule_type)])
    error_message = "Each timer's schedule_type must be Rate or Cron."
  }
  validation {
    # Rate: 1-60 minutes, 1-24 hours or 1-30 days.
    condition     = alltrue([for t in var.timers : t.schedule_type != "Rate" || can(regex("^(([1-9]|[1-5][0-9]|60)m|([1-9]|1[0-9]|2[0-4])h|([1-9]|[12][0-9]|30)d)$", t.schedule))])
    error_message = "A Rate schedule must be 1m-60m, 1h-24h or 1d-30d, e.g. 10m (not 90m or 10min)."
  }
  validation {
    # Cron: 6 fields with seconds (0 0 8 * * ?), 5 without day-of-week, or @every <rate>.
    condition = alltrue([for t in var.timers : t.schedule_type != "Cron" || (
      can(regex("^[0-9*?/,LW#A-Z-]+( [0-9*?/,LW#A-Z-]+){4,5}$", t.schedule)) ||
      can(regex("^@every [1-9][0-9]*[mhd]$", t.schedule))
    )])
    error_message = "A Cron schedule must be 6 fields with seconds (e.g. \"0 0 8 * * ?\"), 5 fields, or \"@every 30m\"; put the time zone in time_zone, not a CRON_TZ= prefix."
  }
  validation {
    condition     = alltrue([for t in var.timers : t.user_event == "" || can(keys(jsondecode(t.user_event)))])
    error_message = "Each timer's user_event must be empty or a JSON object such as {\"mode\": \"alert\"} (not an array, string or number)."
  }
  validation {
    condition = alltrue([for t in var.timers : t.user_event == "" || try(alltrue([
      for k in keys(jsondecode(t.user_event)) : contains(["mode", "modes", "jobs", "force", "dry_run"], k)
    ]), false)])
    error_message = "A timer's user_event may only hold the overrides mode, modes, jobs, force and dry_run."
  }
  validation {
    # FunctionGraph keeps user_event under 2 KB; base64 length bounds the UTF-8 bytes.
    condition     = alltrue([for t in var.timers : length(t.user_event) <= 2048 && length(base64encode(t.user_event)) <= 2732])
    error_message = "Each timer's user_event must be at most 2 KB (2,048 bytes)."
  }
}

variable "time_zone" {
  description = "IANA time zone of the Cron timers (prefixed as CRON_TZ=...; without it FunctionGraph uses the region's zone). Keep delivery.time_zone in the config the same."
  type        = string
  default     = "UTC"
  validation {
    condition     = can(regex("^(UTC|[A-Z][A-Za-z_-]+(/[A-Z][A-Za-z0-9_+-]+){1,2})$", var.time_zone))
    error_message = "time_zone must be an IANA name such as UTC, Asia/Shanghai or Europe/Berlin."
  }
}

# --- Settings and secrets (the function's user data) ----------------------------------------

variable "settings" {
  description = "Plain environment variables of the function (user data): DRS_REPORT_<SECTION>_<KEY> settings and the $${NAME}s that `drs-report package --config` lists as user data."
  type        = map(string)
  default     = {}
  validation {
    condition     = alltrue([for k in keys(var.settings) : can(regex("^[A-Za-z][A-Za-z0-9_]*$", k))])
    error_message = "settings keys must start with a letter and hold only letters, digits and _ (no -)."
  }
  validation {
    # FunctionGraph: 20 keys; the module adds up to 4 of its own (store, OBS endpoint, topic).
    condition     = length(var.settings) <= 16
    error_message = "settings may hold at most 16 keys: FunctionGraph allows 20 and the module sets up to 4 itself."
  }
  validation {
    # FunctionGraph: 4 KB for all user data; 1 KB is kept for the module's own keys.
    condition     = length(jsonencode(var.settings)) <= 3072
    error_message = "settings must be at most 3 KB as JSON: FunctionGraph allows 4 KB of user data and the module's own keys take up to 1 KB."
  }
}

variable "secrets" {
  description = "Encrypted environment variables (encrypted user data): passwords, webhook URLs, DRS_REPORT_STORE_URL with a password; the $${NAME}s that `drs-report package --config` lists as encrypted user data."
  type        = map(string)
  default     = {}
  sensitive   = true
  validation {
    condition     = alltrue([for k in keys(var.secrets) : can(regex("^[A-Za-z][A-Za-z0-9_]*$", k))])
    error_message = "secrets keys must start with a letter and hold only letters, digits and _ (no -)."
  }
  validation {
    # FunctionGraph: 20 keys; the module adds DRS_REPORT_STORE_URL when it creates the RDS.
    condition     = length(var.secrets) <= 19
    error_message = "secrets may hold at most 19 keys: FunctionGraph allows 20 and the module may add DRS_REPORT_STORE_URL."
  }
  validation {
    condition     = length(jsonencode(var.secrets)) <= 3584
    error_message = "secrets must be at most 3.5 KB as JSON: FunctionGraph allows 4 KB of encrypted user data and the module may add the database URL."
  }
}

# --- History --------------------------------------------------------------------------------

variable "history_store" {
  description = "Where the run history lives: obs (SQLite file kept in an OBS bucket between runs; the default), postgresql (create_rds, or your DRS_REPORT_STORE_URL in secrets), or ephemeral (SQLite in /tmp, gone with the instance)."
  type        = string
  default     = "obs"
  validation {
    condition     = contains(["obs", "postgresql", "ephemeral"], var.history_store)
    error_message = "history_store must be obs, postgresql or ephemeral."
  }
}

variable "store_bucket" {
  description = "OBS bucket of the history (history_store = \"obs\"): created by the module (create_store_bucket) or an existing one of yours. Bucket names are global: pick your own."
  type        = string
  default     = ""
  validation {
    condition     = var.store_bucket == "" || (can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.store_bucket)) && !can(regex("\\.\\.|-\\.|\\.-|^[0-9]+\\.[0-9]+\\.[0-9]+\\.[0-9]+$", var.store_bucket)))
    error_message = "store_bucket must be 3-63 lowercase letters, digits, - and ., start and end with a letter or digit, and not look like an IP address."
  }
}

variable "create_store_bucket" {
  description = "Create store_bucket (private, public access blocked, versioning on, old versions expire); false: use your existing bucket by name."
  type        = bool
  default     = true
}

variable "store_object_key" {
  description = "Object key of the SQLite history in the bucket; the agency may touch only objects under this key."
  type        = string
  default     = "drs-report/history.db"
  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9._/-]{0,900}[A-Za-z0-9]$", var.store_object_key)) && !can(regex("//", var.store_object_key))
    error_message = "store_object_key must be an object key such as drs-report/history.db (letters, digits, . _ - /, no leading or doubled /)."
  }
}

variable "store_version_days" {
  description = "Days an overwritten version of the history stays in the bucket, to roll a bad write back."
  type        = number
  default     = 30
  validation {
    condition     = var.store_version_days >= 1 && var.store_version_days <= 3650 && floor(var.store_version_days) == var.store_version_days
    error_message = "store_version_days must be a whole number of days from 1 to 3650."
  }
}

variable "obs_endpoint" {
  description = "OBS endpoint for the history, if not https://obs.<region>.myhuaweicloud.com (sets DRS_REPORT_STORE_OBS_ENDPOINT)."
  type        = string
  default     = ""
  validation {
    condition     = var.obs_endpoint == "" || can(regex("^https?://[^/\\s]+/?$", var.obs_endpoint))
    error_message = "obs_endpoint must be empty or an http(s) URL with a host, e.g. https://obs.cn-north-4.myhuaweicloud.com."
  }
}

# --- Network: a VPC for a private PostgreSQL --------------------------------------------------

variable "vpc_id" {
  description = "VPC to attach the function to (needed for a private PostgreSQL); empty: the function runs on FunctionGraph's public network."
  type        = string
  default     = ""
  validation {
    condition     = var.vpc_id == "" || can(regex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", var.vpc_id))
    error_message = "vpc_id must be empty or a VPC ID (a UUID as the VPC console shows it)."
  }
}

variable "subnet_id" {
  description = "Subnet of vpc_id for the function (and the RDS): the subnet's ID, which FunctionGraph calls network_id."
  type        = string
  default     = ""
  validation {
    condition     = var.subnet_id == "" || can(regex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", var.subnet_id))
    error_message = "subnet_id must be empty or a subnet ID (a UUID as the VPC console shows it)."
  }
}

variable "create_nat_gateway" {
  description = "On a VPC the function loses FunctionGraph's internet access; true creates a NAT gateway, an EIP and an SNAT rule for the subnet so it reaches DRS, SMTP and chat again. false: the VPC already has one."
  type        = bool
  default     = true
}

variable "nat_gateway_spec" {
  description = "NAT gateway size: 1 (small, up to 10,000 connections), 2 (medium), 3 (large), 4 (extra-large)."
  type        = string
  default     = "1"
  validation {
    condition     = contains(["1", "2", "3", "4"], var.nat_gateway_spec)
    error_message = "nat_gateway_spec must be 1, 2, 3 or 4."
  }
}

variable "egress_bandwidth_mbps" {
  description = "Bandwidth of the NAT gateway's EIP in Mbit/s, billed by traffic."
  type        = number
  default     = 5
  validation {
    condition     = var.egress_bandwidth_mbps >= 1 && var.egress_bandwidth_mbps <= 300 && floor(var.egress_bandwidth_mbps) == var.egress_bandwidth_mbps
    error_message = "egress_bandwidth_mbps must be a whole number from 1 to 300."
  }
}

# --- RDS for PostgreSQL (optional) ---------------------------------------------------------

variable "create_rds" {
  description = "Create an RDS for PostgreSQL instance in subnet_id, with a database and an account for the history (needs history_store = \"postgresql\" and a VPC)."
  type        = bool
  default     = false
}

variable "rds_flavor" {
  description = "RDS flavor (see the RDS console or `huaweicloud_rds_flavors`), e.g. rds.pg.n1.large.2 (single node)."
  type        = string
  default     = "rds.pg.n1.large.2"
  validation {
    condition     = can(regex("^rds\\.pg\\.[a-z0-9.]+$", var.rds_flavor))
    error_message = "rds_flavor must be a PostgreSQL flavor such as rds.pg.n1.large.2."
  }
}

variable "rds_availability_zones" {
  description = "Availability zone(s) of the RDS instance, e.g. [\"cn-north-4a\"] (two for a primary/standby flavor)."
  type        = list(string)
  default     = []
  validation {
    condition     = length(var.rds_availability_zones) <= 2 && alltrue([for z in var.rds_availability_zones : can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]+[a-z]$", z))])
    error_message = "rds_availability_zones must list at most 2 zones such as cn-north-4a."
  }
}

variable "rds_postgresql_version" {
  description = "PostgreSQL major version of the RDS instance."
  type        = string
  default     = "16"
  validation {
    condition     = contains(["12", "13", "14", "15", "16", "17"], var.rds_postgresql_version)
    error_message = "rds_postgresql_version must be one of 12 to 17."
  }
}

variable "rds_volume_size" {
  description = "Storage of the RDS instance in GB (40 to 4000, a multiple of 10)."
  type        = number
  default     = 40
  validation {
    condition     = var.rds_volume_size >= 40 && var.rds_volume_size <= 4000 && var.rds_volume_size % 10 == 0
    error_message = "rds_volume_size must be 40 to 4000 GB in steps of 10."
  }
}

# The password rules are checked by preconditions in rds.tf: Terraform prints the value of
# a string variable whose validation fails, sensitive or not.
variable "rds_admin_password" {
  description = "Password of the RDS instance's root account (create_rds): 8-32 characters, three of upper case, lower case, digits and ~!@#%^*-_=+?,"
  type        = string
  default     = ""
  sensitive   = true
}

variable "rds_password" {
  description = "Password of the account the function connects as (create_rds); the same rules as rds_admin_password."
  type        = string
  default     = ""
  sensitive   = true
}

variable "rds_database" {
  description = "Database of the history on the RDS instance."
  type        = string
  default     = "drs_report"
  validation {
    condition     = can(regex("^[a-z_][a-z0-9_]{0,62}$", var.rds_database))
    error_message = "rds_database must be 1-63 lowercase letters, digits and _, not starting with a digit."
  }
}

variable "rds_user" {
  description = "Account the function connects as; it owns rds_database."
  type        = string
  default     = "drs_report"
  validation {
    condition     = can(regex("^[a-z_][a-z0-9_]{0,62}$", var.rds_user)) && !contains(["root", "rdsadmin", "rdsrepl", "rdsbackup", "rdsmirror", "postgres"], var.rds_user)
    error_message = "rds_user must be 1-63 lowercase letters, digits and _, and not a name RDS reserves (root, rdsadmin, rdsrepl, rdsbackup, rdsmirror, postgres)."
  }
}

# --- SMN (optional channel) ------------------------------------------------------------------

variable "create_smn_topic" {
  description = "Create an SMN topic for the smn channel (write topic_urn = \"$${DRS_REPORT_SMN_TOPIC_URN}\" in its config) and let the agency publish to it, and only that."
  type        = bool
  default     = false
}

variable "smn_subscriptions" {
  description = "Subscribers of the topic: protocol (email, sms, http, https) and endpoint. Email and SMS subscribers confirm by the message SMN sends them."
  type = list(object({
    protocol = string
    endpoint = string
  }))
  default = []
  validation {
    condition     = alltrue([for s in var.smn_subscriptions : contains(["email", "sms", "http", "https"], s.protocol)])
    error_message = "Each smn_subscriptions protocol must be email, sms, http or https."
  }
  validation {
    condition = alltrue([for s in var.smn_subscriptions : (
      s.protocol == "email" ? can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", s.endpoint)) :
      s.protocol == "sms" ? can(regex("^\\+?[0-9]{6,20}$", s.endpoint)) :
      can(regex("^${s.protocol}://[^\\s/]+", s.endpoint))
    )])
    error_message = "Each smn_subscriptions endpoint must match its protocol: an email address, a phone number such as +8613800000000, or an http(s) URL of the same scheme."
  }
}
