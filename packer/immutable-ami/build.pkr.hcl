# Upload the disk, write it onto /dev/xvdf (checked against disk_sha256 before and after), then the manifest.
build {
  name    = "immutable-ami"
  sources = ["source.amazon-ebssurrogate.immutable"]

  # On the machine running Packer: pack the sparse disk image (GNU tar keeps the holes out of the upload).
  provisioner "shell-local" {
    inline = [
      "mkdir -p \"$(dirname '${local.upload_local}')\"",
      "echo '${var.disk_sha256}  ${var.disk_image}' | sha256sum -c --quiet",
      "tar --sparse -czf '${local.upload_local}' -C \"$(dirname '${var.disk_image}')\" \"$(basename '${var.disk_image}')\"",
    ]
  }

  provisioner "file" {
    source      = local.upload_local
    destination = local.upload_remote
    generated   = true # made by the shell-local step above: checked when uploading, not when validating
  }

  provisioner "shell" {
    script           = "${path.root}/scripts/write-disk.sh"
    environment_vars = ["NODEFORGE_UPLOAD=${local.upload_remote}", "NODEFORGE_DISK_SHA256=${var.disk_sha256}", "NODEFORGE_DEVICE=/dev/xvdf"]
    execute_command  = "chmod +x {{ .Path }}; sudo env {{ .Vars }} {{ .Path }}"
  }

  post-processors {
    # The catalog's input. Contract: every value a string; kubernetes_version, os and arch required.
    post-processor "manifest" {
      output     = var.manifest_path
      strip_path = true
      custom_data = {
        kubernetes_version = var.kubernetes_version
        os                 = "debian12-immutable"
        arch               = "x86_64"
        variant            = "immutable"
        root_hash          = var.root_hash
        root_fs            = "erofs+dm-verity"
        signing_key        = var.signing_key
        disk_sha256        = var.disk_sha256
        boot_mode          = "uefi"
        imds_support       = "v2.0"
        git_commit         = var.git_commit
        template           = "immutable-ami"
        build_id           = local.build_id
        image_name         = local.image_name
      }
    }
  }
}
