output "function_urn" {
  description = "URN of the drs-report function."
  value       = huaweicloud_fgs_function.drs_report.urn
}

output "agency_name" {
  description = "The agency whose temporary credentials the function uses."
  value       = huaweicloud_identity_agency.drs_report.name
}

output "drs_projects" {
  description = "IAM projects the agency may read DRS jobs in; each [[drs.targets]] of this account in the config is one of them."
  value       = local.drs_projects
}

output "trigger_ids" {
  description = "IDs of the timer triggers, by name."
  value       = { for name, trigger in huaweicloud_fgs_function_trigger.timer : name => trigger.id }
}

output "history" {
  description = "Where the history lives: the obs:// object, the RDS address, or /tmp."
  value = (
    local.use_obs ? local.store_url :
    local.rds_enabled ? "postgresql://${huaweicloud_rds_instance.history[0].fixed_ip}:5432/${var.rds_database}" :
    var.history_store == "postgresql" ? "your DRS_REPORT_STORE_URL" : local.working_db
  )
}

output "egress_ip" {
  description = "Public IP the VPC-attached function reaches the internet from (for SMTP or webhook allow-lists); empty without a NAT gateway created here."
  value       = local.on_vpc && var.create_nat_gateway ? huaweicloud_vpc_eip.egress[0].address : ""
}

output "log_group_id" {
  description = "LTS log group of the function's logs."
  value       = huaweicloud_lts_group.drs_report.id
}

output "smn_topic_urn" {
  description = "URN of the SMN topic (empty unless create_smn_topic); the function gets it as DRS_REPORT_SMN_TOPIC_URN."
  value       = var.create_smn_topic ? huaweicloud_smn_topic.reports[0].topic_urn : ""
}
