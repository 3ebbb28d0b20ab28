# The default history: an SQLite file the function fetches from OBS before a run and writes
# back after it. Versioning keeps the previous copies, so a bad write can be rolled back.

resource "huaweicloud_obs_bucket" "store" {
  count         = local.use_obs && var.create_store_bucket ? 1 : 0
  bucket        = var.store_bucket
  acl           = "private"
  storage_class = "STANDARD"
  versioning    = true
  force_destroy = false

  lifecycle_rule {
    name    = "old-history-versions"
    prefix  = var.store_object_key
    enabled = true

    noncurrent_version_expiration {
      days = var.store_version_days
    }

    abort_incomplete_multipart_upload {
      days = 1
    }
  }
}

resource "huaweicloud_obs_bucket_bpa" "store" {
  count                   = local.use_obs && var.create_store_bucket ? 1 : 0
  bucket                  = huaweicloud_obs_bucket.store[0].bucket
  block_public_acls       = true
  ignore_public_acls      = true
  block_public_policy     = true
  restrict_public_buckets = true
}

# The agency may read and write the history object (and its lease beside it) in this one
# bucket, and list the bucket so that a missing object answers 404, not 403.
resource "huaweicloud_identity_role" "store_objects" {
  count       = local.use_obs ? 1 : 0
  name        = "${var.function_name}-history-objects"
  description = "drs-report: its history objects in one OBS bucket"
  type        = "AX"
  policy = jsonencode({
    Version = "1.1"
    Statement = [
      {
        Effect   = "Allow"
        Action   = ["obs:object:GetObject", "obs:object:PutObject", "obs:object:DeleteObject"]
        Resource = ["OBS:*:*:object:${var.store_bucket}/${var.store_object_key}*"]
      },
      {
        Effect   = "Allow"
        Action   = ["obs:bucket:ListBucket"]
        Resource = ["OBS:*:*:bucket:${var.store_bucket}"]
      },
    ]
  })
}
