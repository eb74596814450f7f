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
  security_group_ids                    = var.security_group_ids
  subnet_id                             = var.subnet_id
  associate_public_ip_address           = var.associate_public_ip_address == "" ? null : var.associate_public_ip_address == "true"
  iam_instance_profile                  = var.iam_instance_profile
  custom_endpoint_ec2                   = var.ec2_endpoint
  # session_manager: the agent is started from user data on a source image without it (see locals.pkr.hcl).
  user_data = local.user_data

  # The build subnet and VPC by filters (instead of subnet_id): the matching subnet with the most free addresses.
  dynamic "subnet_filter" {
    for_each = length(var.subnet_filter) > 0 ? [var.subnet_filter] : []
    content {
      filters   = subnet_filter.value
      most_free = true
    }
  }
  dynamic "vpc_filter" {
    for_each = length(var.vpc_filter) > 0 ? [var.vpc_filter] : []
    content {
      filters = vpc_filter.value
    }
  }

  # Root volume: gp3 by default, encrypted from the first boot of the build instance. IOPS for the types that
  # take them, throughput for gp3 only (the EC2 API refuses them elsewhere).
  launch_block_device_mappings {
    device_name           = "/dev/xvda"
    volume_type           = var.root_volume_type
    volume_size           = var.root_volume_size
    iops                  = var.root_volume_type == "gp2" ? null : var.root_volume_iops
    throughput            = var.root_volume_type == "gp3" ? var.root_volume_throughput : null
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

  # Encrypted copies across regions can take hours: wait up to 4 hours (15 s x 960) for the AMI and its copies.
  aws_polling {
    delay_seconds = 15
    max_attempts  = 960
  }
}
