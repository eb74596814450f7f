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
      python          = "/usr/bin/python3"
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
  # af-south-1, ap-east-1), GovCloud and China: the "amazon" owner alias covers them all.
  source_ami_owners = ["amazon"]

  os_setting      = local.os_settings[var.os]
  arch_setting    = local.arch_settings[var.arch]
  ssh_username    = local.os_setting.ssh_username
  instance_type   = var.instance_type != "" ? var.instance_type : local.arch_setting.instance_type
  source_ami_name = var.source_ami_name != "" ? var.source_ami_name : format(local.os_setting.source_ami_name, var.arch)

  build_id        = var.build_id != "" ? var.build_id : formatdate("YYYYMMDD'T'hhmmss'Z'", timestamp())
  image_name      = "${var.image_name_prefix}-${var.kubernetes_version}-${var.os}-${var.arch}-${local.build_id}"
  ami_description = "nodeforge EKS node: Kubernetes ${var.kubernetes_version} (kubelet ${var.kubelet_version}) on ${local.os_setting.os_name} ${var.arch}"

  # Unpinned components take the OS repository's version: known only once built (the component manifest records them).
  containerd_tag = var.containerd_package_version != "" ? var.containerd_package_version : "os-default"

  # Tags of the AMI and its snapshots (plain keys: the catalog adds its own nodeforge:* tags when it publishes).
  # {{ .SourceAMI }} and {{ .SourceAMIName }} are filled in by the amazon builder.
  image_tag_values = {
    Name               = local.image_name
    os                 = var.os
    os_version         = local.os_setting.os_version
    arch               = var.arch
    kubernetes_version = var.kubernetes_version
    kubelet_version    = var.kubelet_version
    containerd_version = local.containerd_tag
    runc_version       = "os-default"
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
    nodeforge_kubernetes_version = var.kubernetes_version
    nodeforge_artifact_source    = var.artifact_source
    kubelet_version              = var.kubelet_version
    kubelet_build_date           = var.kubelet_build_date
    containerd_package_version   = var.containerd_package_version
    node_base_time_sync_servers  = var.time_sync_servers
    ansible_python_interpreter   = local.os_setting.python
  }

  # The image's component manifest (roles/image_manifest: image_manifest_path), copied beside the Packer manifest.
  image_components_remote_path = "/etc/nodeforge/image-manifest.json"
  image_components_path        = "${dirname(var.manifest_path)}/${local.image_name}.components.json"
}
