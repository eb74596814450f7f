# The build instance and the AMI made from it.
source "amazon-ebs" "eks-node" {
  region        = var.region
  instance_type = local.instance_type

  # Source image: the newest Amazon Linux AMI of the OS and arch, published by Amazon, unless source_ami_id is set.
  source_ami = var.source_ami_id
  dynamic "source_ami_filter" {
    for_each = var.source_ami_id == "" ? [local.source_ami_name] : []
    content {
      filters = {
        name                = source_ami_filter.value
        architecture        = var.arch
        root-device-type    = "ebs"
        virtualization-type = "hvm"
        state               = "available"
      }
      owners      = local.source_ami_owners
      most_recent = true
    }
  }

  # Build instance: IMDSv2 only, reached over SSH with a throw-away ed25519 key.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }
  communicator                          = "ssh"
  ssh_username                          = local.ssh_username
  ssh_interface                         = var.ssh_interface
  ssh_timeout                           = "15m"
  temporary_key_pair_type               = "ed25519"
  temporary_security_group_source_cidrs = var.ssh_source_cidrs
  subnet_id                             = var.subnet_id
  iam_instance_profile                  = var.iam_instance_profile

  # Root volume: gp3, encrypted from the first boot of the build instance.
  launch_block_device_mappings {
    device_name           = "/dev/xvda"
    volume_type           = "gp3"
    volume_size           = var.root_volume_size
    iops                  = var.root_volume_iops
    throughput            = var.root_volume_throughput
    encrypted             = true
    kms_key_id            = var.kms_key_id
    delete_on_termination = true
  }

  # The AMI: encrypted (kms_key_id here, region_kms_key_ids in the copies), IMDSv2 only for every instance.
  ami_name                = local.image_name
  ami_description         = local.ami_description
  ami_virtualization_type = "hvm"
  ena_support             = true
  imds_support            = "v2.0"
  encrypt_boot            = true
  kms_key_id              = var.kms_key_id
  region_kms_key_ids      = var.region_kms_key_ids
  ami_regions             = var.ami_regions
  ami_users               = var.ami_users
  snapshot_users          = var.ami_users
  ami_org_arns            = var.ami_org_arns
  ami_ou_arns             = var.ami_ou_arns
  deprecate_at            = var.deprecate_at

  tags            = local.image_tags
  snapshot_tags   = local.image_tags
  run_tags        = local.run_tags
  run_volume_tags = local.run_tags

  # Encrypted copies across regions can take longer than the SDK's default wait.
  aws_polling {
    delay_seconds = 15
    max_attempts  = 240
  }
}
