output "function_urn" {
  description = "URN of the drs-report function."
  value       = huaweicloud_fgs_function.drs_report.urn
}

output "agency_name" {
  description = "The agency whose temporary credentials the function uses."
  value       = huaweicloud_identity_agency.drs_report.name
}

output "trigger_id" {
  description = "ID of the timer trigger."
  value       = huaweicloud_fgs_function_trigger.timer.id
}

output "smn_topic_urn" {
  description = "URN of the SMN topic (empty unless create_smn_topic); use it as the smn channel's topic_urn."
  value       = var.create_smn_topic ? huaweicloud_smn_topic.reports[0].topic_urn : ""
}
