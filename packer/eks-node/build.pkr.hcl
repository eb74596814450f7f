# Provisioning: the node playbook (as in the local bake), the image's component manifest, the self-verification
# (tests/infra + CIS over SSH, then sysprep, then the hygiene scan on the instance), then the manifest and tags.
build {
  name    = "eks-node"
  sources = ["source.amazon-ebs.eks-node"]

  provisioner "shell" {
    # Let cloud-init finish (it may still hold the package manager). The playbook's first play (roles/target_python)
    # gives Ansible its Python (AL2: python3.8 from amazon-linux-extras).
    inline = [
      "sudo cloud-init status --wait >/dev/null 2>&1 || true",
    ]
  }

  provisioner "ansible" {
    playbook_file    = local.playbook_file
    user             = local.ssh_username
    use_proxy        = false
    extra_arguments  = ["--extra-vars", jsonencode(local.ansible_extra_vars)]
    ansible_env_vars = local.ansible_env_vars
  }

  # The component manifest the playbook's image_manifest role wrote (it stays in the image too).
  provisioner "file" {
    direction   = "download"
    source      = local.image_components_remote_path
    destination = local.image_components_path
  }

  # The build verifies itself before the AMI is registered (1/2): the tests/infra node checks and the CIS table,
  # run from this machine with testinfra over SSH to the build instance (Packer's host, port, user and its
  # throw-away key). Any failure fails the build. Before sysprep: afterwards the instance admits no new SSH login.
  provisioner "shell-local" {
    inline = [
      "set -e",
      "key=$(mktemp)",
      "trap 'rm -f \"$key\"' EXIT",
      "cat > \"$key\" <<'NODEFORGE_BUILD_KEY'\n${build.SSHPrivateKey}\nNODEFORGE_BUILD_KEY",
      "${var.nodeforge_command} verify-build 'ssh://${build.User}@${build.Host}:${build.Port}' --ssh-key \"$key\" --sudo --no-sysprep-checks --no-hygiene --out '${local.verify_dir}'",
    ]
  }

  # Sysprep: host keys, authorized keys, machine-id, cloud-init state, logs, histories, caches.
  provisioner "ansible" {
    playbook_file    = local.sysprep_playbook_file
    user             = local.ssh_username
    use_proxy        = false
    extra_arguments  = ["--extra-vars", jsonencode({ ansible_python_interpreter = local.os_setting.python })]
    ansible_env_vars = local.ansible_env_vars
  }

  # The build verifies itself before the AMI is registered (2/2): the hygiene scan (src/nodeforge/bake/hygiene.py,
  # standard library only) of the instance's own root, run there over Packer's open connection; findings fail
  # the build.
  provisioner "file" {
    source      = local.hygiene_script
    destination = local.hygiene_remote_path
  }
  provisioner "shell" {
    inline = [
      "sudo sh -c 'tar --one-file-system --numeric-owner -C / -cf - . | ${local.os_setting.python} ${local.hygiene_remote_path} -'; status=$?; rm -f ${local.hygiene_remote_path}; exit $status",
    ]
  }

  post-processors {
    # The catalog's input. Contract: every value a string; kubernetes_version, os and arch required.
    post-processor "manifest" {
      output     = var.manifest_path
      strip_path = true
      custom_data = {
        kubernetes_version = var.kubernetes_version
        os                 = var.os
        arch               = var.arch
        os_version         = local.os_setting.os_version
        kubelet_version    = var.kubelet_version
        kubelet_build_date = var.kubelet_build_date
        containerd_version = var.containerd_package_version
        runc_version       = ""
        kernel_version     = ""
        source_image       = build.SourceAMI
        git_commit         = var.git_commit
        template           = local.template_name
        build_id           = local.build_id
        image_name         = local.image_name
      }
    }

    # Fill in what is known only once built (kernel, containerd and runc versions) from the component manifest.
    post-processor "shell-local" {
      inline = ["python3 '${path.root}/scripts/merge_versions.py' '${var.manifest_path}' '${local.image_components_path}' '${local.build_id}'"]
    }

    # Replace the AMIs' placeholder containerd/runc/kernel tags, in every region, by the measured versions.
    post-processor "shell-local" {
      inline = ["${var.nodeforge_command} tag-images '${var.manifest_path}' '${local.build_id}'"]
    }
  }
}
