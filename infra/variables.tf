variable "region" {
  description = "Region of the DRS jobs and of the function, e.g. cn-north-4."
  type        = string
  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]+$", var.region))
    error_message = "region must look like cn-north-4."
  }
}

variable "function_name" {
  description = "Name of the FunctionGraph function."
  type        = string
  default     = "drs-report"
  validation {
    condition     = can(regex("^[A-Za-z][A-Za-z0-9_-]{0,59}$", var.function_name))
    error_message = "function_name: a letter, then up to 59 letters, digits, _ or -."
  }
}

variable "package_path" {
  description = "The zip built by `drs-report package` (default: beside this directory)."
  type        = string
  default     = "../drs-report-function.zip"
}

variable "runtime" {
  description = "FunctionGraph Python runtime; build the zip with the matching --python."
  type        = string
  default     = "Python3.12"
  validation {
    condition     = contains(["Python3.10", "Python3.12"], var.runtime)
    error_message = "runtime must be Python3.10 or Python3.12."
  }
}

variable "memory_size" {
  description = "Memory of the function in MB; 128 holds a 1,000-job run."
  type        = number
  default     = 256
  validation {
    condition     = contains([128, 256, 512, 768, 1024, 2048], var.memory_size)
    error_message = "memory_size must be one of 128, 256, 512, 768, 1024, 2048."
  }
}

variable "timeout" {
  description = "Function timeout in seconds; the run stops fetching a safety margin before it."
  type        = number
  default     = 120
  validation {
    condition     = var.timeout >= 3 && var.timeout <= 900
    error_message = "timeout must be between 3 and 900 seconds."
  }
}

variable "schedule_type" {
  description = "Timer kind: Rate (e.g. 10m) or Cron (e.g. 0 0 8 * * ?)."
  type        = string
  default     = "Rate"
  validation {
    condition     = contains(["Rate", "Cron"], var.schedule_type)
    error_message = "schedule_type must be Rate or Cron."
  }
}

variable "schedule" {
  description = "Timer schedule: for Rate a duration like 10m or 1h, for Cron a cron expression."
  type        = string
  default     = "10m"
}

variable "user_event" {
  description = "JSON overrides passed to every timer run, e.g. {\"mode\": \"alert\"}; empty for none."
  type        = string
  default     = ""
  validation {
    condition     = var.user_event == "" || can(jsondecode(var.user_event))
    error_message = "user_event must be empty or a JSON object."
  }
}

variable "settings" {
  description = "Non-secret settings as environment variables, e.g. DRS_REPORT_STORE_RETENTION_DAYS."
  type        = map(string)
  default     = {}
}

variable "secrets" {
  description = "Secret environment variables (SMTP_PASSWORD, FEISHU_SECRET, DRS_REPORT_STORE_URL with a password): stored encrypted."
  type        = map(string)
  default     = {}
  sensitive   = true
}

variable "create_smn_topic" {
  description = "Create an SMN topic for the smn channel, and let the agency publish to it."
  type        = bool
  default     = false
}
