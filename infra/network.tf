# A function attached to a VPC loses FunctionGraph's own internet access: the DRS endpoint,
# SMTP servers and chat webhooks are then reached through a NAT gateway's SNAT rule.

# FunctionGraph creates the function's port in the subnet with the agency's rights; this is
# the least the documentation lists for VPC access (instead of VPC Administrator).
resource "huaweicloud_identity_role" "vpc_access" {
  count       = local.on_vpc ? 1 : 0
  name        = "${var.function_name}-vpc-access"
  description = "drs-report: let FunctionGraph attach the function to its VPC"
  type        = "XA"
  policy = jsonencode({
    Version = "1.1"
    Statement = [{
      Effect = "Allow"
      Action = ["vpc:ports:create", "vpc:ports:get", "vpc:ports:delete", "vpc:vpcs:get", "vpc:subnets:get"]
    }]
  })
}

data "huaweicloud_vpc_subnet" "function" {
  count = local.on_vpc ? 1 : 0
  id    = var.subnet_id
}

resource "huaweicloud_vpc_eip" "egress" {
  count = local.on_vpc && var.create_nat_gateway ? 1 : 0
  name  = "${var.function_name}-egress"

  publicip {
    type = "5_bgp"
  }

  bandwidth {
    share_type  = "PER"
    name        = "${var.function_name}-egress"
    size        = var.egress_bandwidth_mbps
    charge_mode = "traffic"
  }
}

resource "huaweicloud_nat_gateway" "egress" {
  count       = local.on_vpc && var.create_nat_gateway ? 1 : 0
  name        = "${var.function_name}-egress"
  description = "drs-report: internet access for the VPC-attached function"
  spec        = var.nat_gateway_spec
  vpc_id      = var.vpc_id
  subnet_id   = var.subnet_id
}

resource "huaweicloud_nat_snat_rule" "egress" {
  count          = local.on_vpc && var.create_nat_gateway ? 1 : 0
  nat_gateway_id = huaweicloud_nat_gateway.egress[0].id
  floating_ip_id = huaweicloud_vpc_eip.egress[0].id
  subnet_id      = var.subnet_id
  description    = "drs-report: the function's subnet to the internet"
}
