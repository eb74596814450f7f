# The immutable node as an AMI: a builder instance writes the sealed A/B disk onto an attached, encrypted EBS
# volume (/dev/xvdf); amazon-ebssurrogate snapshots that volume and registers it as the AMI's root device.
# The disk boots by itself only once it carries its own boot loader (the self-booting disk of issue 15 §1):
# until then the AMI holds the sealed slots, the boot record, the public key and the state partition.
source "amazon-ebssurrogate" "immutable" {
  region        = var.region
  instance_type = var.builder_instance_type

  source_ami = var.builder_source_ami_id
  dynamic "source_ami_filter" {
    for_each = var.builder_source_ami_id == "" ? ["al2023-ami-2023.*-kernel-*-x86_64"] : []
    content {
      filters = {
        name                = source_ami_filter.value
        architecture        = "x86_64"
        root-device-type    = "ebs"
        virtualization-type = "hvm"
        state               = "available"
      }
      owners      = ["amazon"]
      most_recent = true
    }
  }

  # Builder instance: IMDSv2 only, SSH with a throw-away ed25519 key.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }
  communicator                          = "ssh"
  ssh_username                          = "ec2-user"
  ssh_timeout                           = "15m"
  temporary_key_pair_type               = "ed25519"
  temporary_security_group_source_cidrs = var.ssh_source_cidrs
  subnet_id                             = var.subnet_id

  # The volume the disk is written to: encrypted from creation, so the snapshot and the AMI are too.
  launch_block_device_mappings {
    device_name           = "/dev/xvdf"
    volume_type           = "gp3"
    volume_size           = var.volume_size
    iops                  = 3000
    throughput            = 125
    encrypted             = true
    kms_key_id            = var.kms_key_id
    delete_on_termination = true
  }

  # The AMI: its root device is that volume; UEFI boot, ENA, IMDSv2 only for every instance, encrypted.
  ami_root_device {
    source_device_name    = "/dev/xvdf"
    device_name           = "/dev/xvda"
    volume_type           = "gp3"
    volume_size           = var.volume_size
    delete_on_termination = true
  }
  ami_name                = local.image_name
  ami_description         = "nodeforge immutable EKS node (erofs + dm-verity, A/B), root hash ${var.root_hash}"
  ami_virtualization_type = "hvm"
  ami_architecture        = "x86_64"
  boot_mode               = "uefi"
  ena_support             = true
  imds_support            = "v2.0"
  encrypt_boot            = true
  kms_key_id              = var.kms_key_id
  region_kms_key_ids      = var.region_kms_key_ids
  ami_regions             = var.ami_regions
  ami_users               = var.ami_users
  snapshot_users          = var.ami_users

  tags          = local.image_tags
  snapshot_tags = local.image_tags
  run_tags      = { Name = "nodeforge-immutable-builder" }
}
