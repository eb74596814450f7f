locals {
  build_id   = formatdate("YYYYMMDDhhmmss", timestamp())
  image_name = "nodeforge-immutable-k8s${var.kubernetes_version}-x86_64-${local.build_id}"
  # Uploaded to the builder: the disk image as a sparse-aware gzip'd tar (the slots are mostly unallocated).
  upload_local  = "${path.root}/../../build/immutable-ami/disk-${substr(var.disk_sha256, 0, 12)}.tar.gz"
  upload_remote = "/tmp/nodeforge-disk.tar.gz"
  image_tags = {
    Name              = local.image_name
    nodeforge_variant = "immutable"
    root_hash         = var.root_hash
    root_fs           = "erofs+dm-verity"
    signing_key       = var.signing_key
    kubernetes        = var.kubernetes_version
    git_commit        = var.git_commit
  }
}
