# Optional RDS for PostgreSQL in the function's subnet: history shared by every instance,
# reached over the VPC. Its URL goes to the function as encrypted user data only.

locals {
  # RDS: 8-32 characters, at least three of upper case, lower case, digits, ~!@#%^*-_=+?,
  password_classes = ["[A-Z]", "[a-z]", "[0-9]", "[~!@#%^*_=+?,-]"]
  rds_admin_password_ok = can(regex("^[A-Za-z0-9~!@#%^*_=+?,-]{8,32}$", var.rds_admin_password)) && length(
    [for class in local.password_classes : class if can(regex(class, var.rds_admin_password))]
  ) >= 3
  rds_password_ok = can(regex("^[A-Za-z0-9~!@#%^*_=+?,-]{8,32}$", var.rds_password)) && length(
    [for class in local.password_classes : class if can(regex(class, var.rds_password))]
  ) >= 3

  rds_url = local.rds_enabled ? format(
    "postgresql+psycopg://%s:%s@%s:%d/%s",
    var.rds_user, urlencode(var.rds_password), huaweicloud_rds_instance.history[0].fixed_ip,
    huaweicloud_rds_instance.history[0].db[0].port, var.rds_database,
  ) : ""
}

# Only the function's subnet may reach PostgreSQL's port.
resource "huaweicloud_networking_secgroup" "rds" {
  count                = local.rds_enabled ? 1 : 0
  name                 = "${var.function_name}-rds"
  description          = "drs-report: PostgreSQL from the function's subnet only"
  delete_default_rules = true
}

resource "huaweicloud_networking_secgroup_rule" "rds_from_function" {
  count             = local.rds_enabled ? 1 : 0
  security_group_id = huaweicloud_networking_secgroup.rds[0].id
  direction         = "ingress"
  ethertype         = "IPv4"
  protocol          = "tcp"
  ports             = "5432"
  remote_ip_prefix  = data.huaweicloud_vpc_subnet.function[0].cidr
  description       = "PostgreSQL from the drs-report function"
}

resource "huaweicloud_rds_instance" "history" {
  count             = local.rds_enabled ? 1 : 0
  name              = "${var.function_name}-history"
  flavor            = var.rds_flavor
  availability_zone = var.rds_availability_zones
  vpc_id            = var.vpc_id
  subnet_id         = var.subnet_id
  security_group_id = huaweicloud_networking_secgroup.rds[0].id
  ssl_enable        = true

  db {
    type     = "PostgreSQL"
    version  = var.rds_postgresql_version
    password = var.rds_admin_password
    port     = 5432
  }

  volume {
    type = "CLOUDSSD"
    size = var.rds_volume_size
  }

  backup_strategy {
    start_time = "02:00-03:00"
    keep_days  = 7
  }

  lifecycle {
    precondition {
      condition     = local.on_vpc
      error_message = "create_rds needs vpc_id and subnet_id: the instance and the function share that subnet."
    }
    precondition {
      condition     = length(var.rds_availability_zones) >= 1
      error_message = "create_rds needs rds_availability_zones, e.g. [\"cn-north-4a\"]."
    }
    precondition {
      condition     = local.rds_admin_password_ok
      error_message = "rds_admin_password must be 8-32 characters from letters, digits and ~!@#%^*-_=+?, using at least three of upper case, lower case, digits and those symbols."
    }
  }
}

resource "huaweicloud_rds_pg_account" "drs_report" {
  count       = local.rds_enabled ? 1 : 0
  instance_id = huaweicloud_rds_instance.history[0].id
  name        = var.rds_user
  password    = var.rds_password
  description = "drs-report: the function's history"

  lifecycle {
    precondition {
      condition     = local.rds_password_ok
      error_message = "rds_password must be 8-32 characters from letters, digits and ~!@#%^*-_=+?, using at least three of upper case, lower case, digits and those symbols."
    }
  }
}

# The account owns the database, so the function's migrations can create its tables.
resource "huaweicloud_rds_pg_database" "history" {
  count       = local.rds_enabled ? 1 : 0
  instance_id = huaweicloud_rds_instance.history[0].id
  name        = var.rds_database
  owner       = huaweicloud_rds_pg_account.drs_report[0].name
  description = "drs-report history"
}
