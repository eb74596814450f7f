# Everything derived from the variables: per-OS and per-arch settings, names, tags, the playbook's inputs.

locals {
  template_name = "eks-node"

  # Base OS rows. source_ami_name is a format() pattern taking the arch; the names are Amazon's public AMI names
  # (AL2023 minimal with the 6.1 kernel; AL2 with the 5.10 kernel EKS's own AL2 nodes run, not the 4.14 of AL2 minimal).
  os_settings = {
    al2023 = {
      os_name         = "Amazon Linux 2023"
      os_version      = "2023"
      ssh_username    = "ec2-user"
      source_ami_name = "al2023-ami-minimal-2023.*-kernel-6.1-%s"
      python          = "/usr/bin/python3"
    }
    al2 = {
      os_name         = "Amazon Linux 2"
      os_version      = "2"
      ssh_username    = "ec2-user"
      source_ami_name = "amzn2-ami-kernel-5.10-hvm-2.0.*-%s-gp2"
      # AL2's own python3 is 3.7, which ansible-core 2.19 no longer supports on targets: the playbook's first
      # play installs python3.8 from amazon-linux-extras with raw commands (roles/target_python).
      python = "/usr/bin/python3.8"
    }
  }

  # Arch rows: the default build instance type (the build only needs 2 vCPUs and 8 GiB).
  arch_settings = {
    x86_64 = {
      instance_type = "m6i.large"
    }
    arm64 = {
      instance_type = "m6g.large"
    }
  }

  # Amazon publishes Amazon Linux from one account in most regions but from others in opt-in regions (e.g.
  # af-south-1, ap-east-1), GovCloud and China: the "amazon" owner alias (the default) covers them all.
  source_ami_owners = var.source_ami_owners

  # Combinations that cannot build. Packer's variable validations see one variable each, so these are checked
  # here: any refusal stops `packer validate` and `packer build` while the locals are evaluated, before an
  # instance is launched, with the reasons in the error. nodeforge build-vars refuses the same (packer_vars.py).
  kubernetes_minor = try(parseint(split(".", var.kubernetes_version)[1], 10), 0)
  refusal_checks = {
    "os = al2 cannot run Kubernetes 1.33 or later (EKS publishes no Amazon Linux 2 node for them; amazon-eks-ami's last AL2 AMIs are for 1.32)" = var.os == "al2" && local.kubernetes_minor >= 33
    "containerd_package_version 2.x cannot be installed on os = al2 (amazon-linux-extras' docker topic ships containerd 1.x)"                   = var.os == "al2" && substr(var.containerd_package_version, 0, 2) == "2."
    "kubelet_version must be a build of kubernetes_version"                                                                                     = substr(var.kubelet_version, 0, length(var.kubernetes_version) + 1) != "${var.kubernetes_version}."
    "ssh_interface = session_manager needs iam_instance_profile (a role with AmazonSSMManagedInstanceCore)"                                     = var.ssh_interface == "session_manager" && var.iam_instance_profile == ""
    "ssh_interface = public_ip or public_dns needs a public address: associate_public_ip_address is false"                                      = contains(["public_ip", "public_dns"], var.ssh_interface) && var.associate_public_ip_address == "false"
    "ssh_source_cidrs only apply to the temporary security group: not with security_group_ids"                                                  = length(var.security_group_ids) > 0 && length(var.ssh_source_cidrs) > 0
    "subnet_id and subnet_filter both choose the subnet: set one"                                                                               = var.subnet_id != "" && length(var.subnet_filter) > 0
    "vpc_filter needs subnet_id or subnet_filter (Packer launches into a VPC only through a subnet)"                                            = length(var.vpc_filter) > 0 && var.subnet_id == "" && length(var.subnet_filter) == 0
    "root_volume_iops applies to gp3, io1 and io2 only: leave it at 3000 for gp2"                                                               = var.root_volume_type == "gp2" && var.root_volume_iops != 3000
    "root_volume_throughput applies to gp3 only: leave it at 125 for ${var.root_volume_type}"                                                   = var.root_volume_type != "gp3" && var.root_volume_throughput != 125
    "gp3 allows 500 IOPS per GiB: raise root_volume_size or lower root_volume_iops"                                                             = var.root_volume_type == "gp3" && var.root_volume_iops > var.root_volume_size * 500
    "gp3 allows 0.25 MiB/s per IOPS: raise root_volume_iops or lower root_volume_throughput"                                                    = var.root_volume_type == "gp3" && var.root_volume_throughput * 4 > var.root_volume_iops
    "io1 allows 50 IOPS per GiB: raise root_volume_size or lower root_volume_iops"                                                              = var.root_volume_type == "io1" && var.root_volume_iops > var.root_volume_size * 50
  }
  refusals = [for reason, refused in local.refusal_checks : reason if refused]
  # file() of a path that cannot exist is the only way a Packer 1.6+ template can fail with a message of its own.
  refused = length(local.refusals) == 0 ? "" : file("CANNOT BUILD: ${join("; ", local.refusals)}")

  os_setting      = local.os_settings[var.os]
  arch_setting    = local.arch_settings[var.arch]
  ssh_username    = local.os_setting.ssh_username
  instance_type   = var.instance_type != "" ? var.instance_type : local.arch_setting.instance_type
  source_ami_name = var.source_ami_name != "" ? var.source_ami_name : format(local.os_setting.source_ami_name, var.arch)

  build_id        = var.build_id != "" ? var.build_id : formatdate("YYYYMMDD'T'hhmmss'Z'", timestamp())
  image_name      = "${var.image_name_prefix}-${var.kubernetes_version}-${var.os}-${var.arch}-${local.build_id}"
  ami_description = "nodeforge EKS node: Kubernetes ${var.kubernetes_version} (kubelet ${var.kubelet_version}) on ${local.os_setting.os_name} ${var.arch}"

  # Versions known only once built (an unpinned package takes the OS repository's): the AMI starts with these
  # placeholders and the last post-processor (nodeforge tag-images) replaces them, in every region, with the
  # versions the image's component manifest records.
  measured_tag = "pending-component-manifest"

  # Tags of the AMI and its snapshots (plain keys: the catalog adds its own nodeforge:* tags when it publishes).
  # {{ .SourceAMI }} and {{ .SourceAMIName }} are filled in by the amazon builder.
  image_tag_values = {
    Name               = local.image_name
    os                 = var.os
    os_version         = local.os_setting.os_version
    arch               = var.arch
    kubernetes_version = var.kubernetes_version
    kubelet_version    = var.kubelet_version
    containerd_version = local.measured_tag
    runc_version       = local.measured_tag
    kernel_version     = local.measured_tag
    source_ami         = "{{ .SourceAMI }}"
    source_ami_name    = "{{ .SourceAMIName }}"
    build_id           = local.build_id
    git_commit         = var.git_commit
    template           = local.template_name
    created_by         = "nodeforge"
  }
  image_tags = merge(var.extra_tags, local.image_tag_values)
  builder_tag_values = {
    Name = "${local.image_name}-builder"
  }
  run_tags = merge(local.image_tags, local.builder_tag_values)

  # The node playbook, the same one the local bake runs (packer/local.pkr.hcl), and its inputs.
  playbook_file = "${path.root}/../../playbooks/node.yml"
  ansible_env_vars = [
    "ANSIBLE_CONFIG=${path.root}/../../ansible.cfg",
    "ANSIBLE_ROLES_PATH=${path.root}/../../roles",
  ]
  ansible_extra_vars = {
    nodeforge_kubernetes_version            = var.kubernetes_version
    nodeforge_artifact_source               = var.artifact_source
    kubelet_version                         = var.kubelet_version
    kubelet_build_date                      = var.kubelet_build_date
    containerd_package_version              = var.containerd_package_version
    node_base_time_sync_servers             = var.time_sync_servers
    ansible_python_interpreter              = local.os_setting.python
    containerd_sandbox_image_archive_source = var.artifact_source
    containerd_sandbox_image_archive_path   = var.sandbox_image_archive_path
    # sysprep runs as its own step (playbooks/sysprep.yml) once the instance has verified itself over SSH
    nodeforge_sysprep = false
  }
  sysprep_playbook_file = "${path.root}/../../playbooks/sysprep.yml"

  # The self-verification step's outputs, and the hygiene scan that runs on the instance after sysprep.
  verify_dir          = "${dirname(var.manifest_path)}/${local.image_name}.verify"
  hygiene_script      = "${path.root}/../../src/nodeforge/bake/hygiene.py"
  hygiene_remote_path = "/dev/shm/nodeforge-hygiene.py"

  # session_manager: AL2023 minimal ships no SSM agent, so the build instance installs and starts it from its
  # user data (cloud-init), before Packer connects through Session Manager. (The node playbook installs it too.)
  user_data = var.ssh_interface != "session_manager" ? "" : join("\n", [
    "#!/bin/sh",
    "command -v amazon-ssm-agent >/dev/null 2>&1 || dnf install -y amazon-ssm-agent || yum install -y amazon-ssm-agent",
    "systemctl enable --now amazon-ssm-agent",
    "",
  ])

  # The image's component manifest (roles/image_manifest: image_manifest_path), copied beside the Packer manifest.
  image_components_remote_path = "/etc/nodeforge/image-manifest.json"
  image_components_path        = "${dirname(var.manifest_path)}/${local.image_name}.components.json"
}
