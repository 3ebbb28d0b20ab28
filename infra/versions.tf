terraform {
  # optional() object attributes in variable types need 1.3.
  required_version = ">= 1.3"
  required_providers {
    huaweicloud = {
      source = "huaweicloud/huaweicloud"
      # Every argument here is checked against this version's schema (tests/test_infra.py);
      # older ones lack huaweicloud_fgs_runtime_types, the async invoke configuration and
      # the OBS public-access block this module uses.
      version = ">= 1.97.1, < 2.0.0"
    }
  }
}

provider "huaweicloud" {
  region = var.region
}
