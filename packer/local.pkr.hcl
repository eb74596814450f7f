# Local bake: the node playbook converged in a Docker instance of the local base image (Debian standing in for
# Amazon Linux), committed as an image, with a Packer manifest. Works with the Packer in Debian (1.6.6):
# the docker builder, ansible provisioner, docker-tag, manifest and shell-local post-processors are built in.
# variant = "immutable" also seals the image (read-only erofs root + dm-verity hash tree, `nodeforge image
# seal-image`) and records its root hash in the manifest.

variable "base_image" {
  type        = string
  description = "Docker image to start from (built by `nodeforge base`)."
  default     = "nodeforge/base:bookworm"
  validation {
    condition     = length(var.base_image) > 0 && length(split(":", var.base_image)) == 2
    error_message = "The base_image must be a repository:tag reference."
  }
}

variable "image_repository" {
  type        = string
  description = "Repository the baked image is tagged into."
  default     = "nodeforge/node"
  validation {
    condition     = length(var.image_repository) > 0 && lower(var.image_repository) == var.image_repository
    error_message = "The image_repository must be a non-empty lower-case Docker repository name."
  }
}

variable "image_tag" {
  type        = string
  description = "Tag of the baked image."
  default     = "latest"
  validation {
    condition     = length(var.image_tag) > 0 && length(var.image_tag) <= 128
    error_message = "The image_tag must be 1 to 128 characters."
  }
}

variable "kubernetes_version" {
  type        = string
  description = "Kubernetes minor version of the node, e.g. 1.31."
  default     = "1.31"
  validation {
    condition     = length(split(".", var.kubernetes_version)) == 2 && substr(var.kubernetes_version, 0, 2) == "1." && length(split(".", var.kubernetes_version)[1]) > 0 && length(trim(split(".", var.kubernetes_version)[1], "0123456789")) == 0
    error_message = "The kubernetes_version must be a minor version like 1.31."
  }
}

variable "kubelet_version" {
  type        = string
  description = "Full kubelet version the playbook installs for kubernetes_version (recorded in the manifest)."
  default     = "1.31.3"
  validation {
    condition     = length(split(".", var.kubelet_version)) == 3 && substr(var.kubelet_version, 0, 2) == "1."
    error_message = "The kubelet_version must look like 1.31.3."
  }
}

variable "artifact_source" {
  type        = string
  description = "Artifact source for kubelet and friends: URL (EKS bucket layout) or a folder on this machine."
  default     = "https://amazon-eks.s3.us-west-2.amazonaws.com"
  validation {
    condition     = length(var.artifact_source) > 0
    error_message = "The artifact_source must not be empty."
  }
}

variable "time_sync_servers" {
  type        = list(string)
  description = "NTP servers for chrony. The local image has no route to the Amazon Time Sync Service."
  default     = ["127.0.0.1"]
  validation {
    condition     = length(var.time_sync_servers) > 0
    error_message = "The time_sync_servers list needs at least one server."
  }
}

variable "apt_proxy" {
  type        = string
  description = "HTTP proxy for apt during this build only (e.g. the test run's apt-cacher-ng); empty: none. Never kept in the image."
  default     = ""
  validation {
    condition     = var.apt_proxy == "" || ((substr(var.apt_proxy, 0, 7) == "http://" && length(var.apt_proxy) > 7) || (substr(var.apt_proxy, 0, 8) == "https://" && length(var.apt_proxy) > 8)) && length(split(" ", var.apt_proxy)) == 1
    error_message = "The apt_proxy must be empty or a proxy URL like http://127.0.0.1:3142."
  }
}

variable "manifest_path" {
  type        = string
  description = "Where the Packer manifest is written."
  default     = "build/local/manifest.json"
  validation {
    condition     = length(var.manifest_path) > 0
    error_message = "The manifest_path must not be empty."
  }
}

variable "components_path" {
  type        = string
  description = "Where the image's component manifest (/etc/nodeforge/image-manifest.json) is copied."
  default     = "build/local/components.json"
  validation {
    condition     = length(var.components_path) > 0
    error_message = "The components_path must not be empty."
  }
}

variable "git_commit" {
  type        = string
  description = "Commit of nodeforge the image is built from."
  default     = "unknown"
  validation {
    condition     = length(var.git_commit) > 0
    error_message = "The git_commit must not be empty."
  }
}

variable "variant" {
  type        = string
  description = "mutable: the committed image; immutable: also sealed into an erofs + dm-verity root (seal_dir)."
  default     = "mutable"
  validation {
    condition     = contains(["mutable", "immutable"], var.variant)
    error_message = "The variant must be mutable or immutable."
  }
}

variable "seal_dir" {
  type        = string
  description = "Where the immutable variant's sealed root goes (root.img, root.verity, kernel, initramfs, seal.json)."
  default     = "build/local/sealed"
  validation {
    condition     = length(var.seal_dir) > 0
    error_message = "The seal_dir must not be empty."
  }
}

variable "rootfs_tar" {
  type        = string
  description = "Where the immutable variant keeps the exported root filesystem tar it sealed."
  default     = "build/local/rootfs.tar"
  validation {
    condition     = length(var.rootfs_tar) > 0
    error_message = "The rootfs_tar must not be empty."
  }
}

variable "signing_key" {
  type        = string
  description = "Immutable variant: private key (PEM) that signs the root hash (`nodeforge image keygen`); empty: unsigned."
  default     = ""
}

variable "nodeforge_command" {
  type        = string
  description = "How to run the nodeforge CLI for the seal step (e.g. `nodeforge` or `python3 -m nodeforge.cli`)."
  default     = "nodeforge"
  validation {
    condition     = length(var.nodeforge_command) > 0
    error_message = "The nodeforge_command must not be empty."
  }
}

variable "ssm_agent_package_path" {
  type        = string
  description = "Path of the amazon-ssm-agent .deb below artifact_source (with a .sha256 beside it)."
  default     = "amazon-ssm-agent/fixture/debian_amd64/amazon-ssm-agent.deb"
  validation {
    condition     = length(var.ssm_agent_package_path) > 4 && substr(var.ssm_agent_package_path, length(var.ssm_agent_package_path) - 4, 4) == ".deb"
    error_message = "The ssm_agent_package_path must be a path ending in .deb."
  }
}

variable "self_verify" {
  type        = bool
  description = "Run `nodeforge verify-build` against the build instance before the image is committed (tests/infra, CIS table, hygiene scan); a failure fails the build. The step packer/eks-node runs before an AMI is registered."
  default     = true
}

variable "verify_dir" {
  type        = string
  description = "Where the self-verification step writes its log, junit reports and verify-build.json."
  default     = "build/local/verify-build"
  validation {
    condition     = length(var.verify_dir) > 0 && length(split("'", var.verify_dir)) == 1
    error_message = "The verify_dir must be a non-empty path without single quotes."
  }
}

variable "cgroup_parent" {
  type        = string
  description = "Cgroup the build instance's container is created under (docker run --cgroup-parent), e.g. one with a larger CPU share on a shared build host; empty: Docker's default."
  default     = ""
  validation {
    condition     = var.cgroup_parent == "" || (length(trim(var.cgroup_parent, "/ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")) == 0 && length(split("..", var.cgroup_parent)) == 1)
    error_message = "The cgroup_parent must be empty or a cgroup path such as /nodeforge-lead (letters, digits, _ . - and /)."
  }
}

locals {
  # docker run options for a systemd instance on this kind of host (see ../shared/notes/substrate.md):
  # every capability but SYS_RESOURCE (host lacks it) and SYS_TIME (keep the host clock safe).
  capabilities = [
    "AUDIT_CONTROL", "AUDIT_READ", "AUDIT_WRITE", "BLOCK_SUSPEND", "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH",
    "FOWNER", "FSETID", "IPC_LOCK", "IPC_OWNER", "KILL", "LEASE", "LINUX_IMMUTABLE", "MAC_ADMIN", "MAC_OVERRIDE",
    "MKNOD", "NET_ADMIN", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_RAW", "SETFCAP", "SETGID", "SETPCAP", "SETUID",
    "SYSLOG", "SYS_ADMIN", "SYS_BOOT", "SYS_CHROOT", "SYS_MODULE", "SYS_NICE", "SYS_PACCT", "SYS_PTRACE",
    "SYS_RAWIO", "SYS_TTY_CONFIG", "WAKE_ALARM",
  ]
  run_command = concat(
    ["-d", "-i", "-t", "--network", "host", "--cgroupns", "host"],
    flatten([for cap in local.capabilities : ["--cap-add", cap]]),
    ["--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
    "--security-opt", "systempaths=unconfined"],
    ["-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "-v", "/var/lib/containerd", "--tmpfs", "/run", "--tmpfs", "/tmp"],
    var.cgroup_parent == "" ? [] : ["--cgroup-parent", var.cgroup_parent],
    ["{{.Image}}", "/lib/systemd/systemd"],
  )
  extra_vars = {
    nodeforge_kubernetes_version = var.kubernetes_version
    nodeforge_artifact_source    = var.artifact_source
    node_base_time_sync_servers  = var.time_sync_servers
    os_packages_apt_proxy        = var.apt_proxy
    ansible_python_interpreter   = "/usr/bin/python3"
    # Debian has no amazon-ssm-agent package: a verified .deb from the artifact source (the fixture tree's
    # labelled stand-in, nodeforge.bake.fixtures.build_ssm_agent_deb, unless ssm_agent_package_path says otherwise)
    ssm_agent_package_source = var.artifact_source
    ssm_agent_package_path   = var.ssm_agent_package_path
  }
}

source "docker" "node" {
  image       = var.base_image
  pull        = false
  commit      = true
  run_command = local.run_command
  changes = [
    "CMD [\"/lib/systemd/systemd\"]",
    "LABEL org.nodeforge.kubernetes-version=${var.kubernetes_version}",
    "LABEL org.nodeforge.git-commit=${var.git_commit}",
  ]
}

build {
  sources = ["source.docker.node"]

  provisioner "shell" {
    # /tmp is a tmpfs in the instance, which `docker cp` cannot write to.
    remote_folder = "/var/tmp"
    # systemd has just been started as PID 1: wait until it answers on its bus and has finished booting.
    inline = [
      "for i in $(seq 1 120); do case \"$(systemctl is-system-running 2>/dev/null)\" in running|degraded) break ;; esac; sleep 0.5; done",
      "systemctl is-system-running --wait || systemctl --failed --no-legend",
    ]
  }

  provisioner "ansible" {
    playbook_file = "${path.root}/../playbooks/node.yml"
    user          = "root"
    # Packer 1.6.6's SSH proxy offers only ssh-rsa host keys, which OpenSSH 9 refuses by default.
    extra_arguments = [
      "--extra-vars", jsonencode(local.extra_vars),
      "--ssh-extra-args", "-o HostKeyAlgorithms=+ssh-rsa -o PubkeyAcceptedKeyTypes=+ssh-rsa",
    ]
    ansible_env_vars = ["ANSIBLE_CONFIG=${path.root}/../ansible.cfg", "ANSIBLE_ROLES_PATH=${path.root}/../roles"]
  }

  provisioner "file" {
    direction   = "download"
    source      = "/etc/nodeforge/image-manifest.json"
    destination = var.components_path
  }

  # The build verifies itself, on the live build instance over Packer's communicator (here the container, by id),
  # before the image is committed: the same step as packer/eks-node's before an AMI is registered.
  provisioner "shell-local" {
    inline = [
      "if [ '${var.self_verify}' != true ]; then echo 'self-verification skipped (self_verify = false)'; exit 0; fi",
      "${var.nodeforge_command} verify-build 'docker://${build.ID}' --out '${var.verify_dir}'",
    ]
  }

  post-processors {
    post-processor "docker-tag" {
      repository = var.image_repository
      tags       = [var.image_tag]
    }
    post-processor "manifest" {
      output     = var.manifest_path
      strip_path = true
      # Same custom_data contract as the amazon-ebs templates (the catalog ingests it).
      custom_data = {
        kubernetes_version = var.kubernetes_version
        kubelet_version    = var.kubelet_version
        os                 = "debian12"
        os_version         = "12"
        arch               = "x86_64"
        source_image       = var.base_image
        git_commit         = var.git_commit
        template           = "local"
        image_name         = "${var.image_repository}:${var.image_tag}"
        variant            = var.variant
      }
    }
    # The immutable variant: export, seal, root hash into the manifest above (a no-op for the mutable one).
    post-processor "shell-local" {
      inline = [
        "if [ '${var.variant}' != immutable ]; then exit 0; fi",
        "${var.nodeforge_command} image seal-image ${var.image_repository}:${var.image_tag} --out '${var.seal_dir}' --manifest '${var.manifest_path}' --rootfs-tar '${var.rootfs_tar}'${var.signing_key == "" ? "" : " --signing-key '${var.signing_key}'"}",
      ]
    }
  }
}
