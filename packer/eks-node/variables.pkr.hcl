# Inputs of the EKS node AMI build. Each has a type, a description and a validation.
#
# The conditions use only functions every Packer since 1.6 has (split, trim, substr, length, contains, can, try,
# formatdate, cidrhost), not regex(): the offline test suite evaluates these very conditions with the Packer
# found on the build machines (1.6.6), which lacks regex(). The pattern each condition implements is written
# above it as a regular expression; tests/unit/packer checks the two agree.

# --- What to build ------------------------------------------------------------------------------------------

variable "kubernetes_version" {
  type        = string
  description = "Kubernetes minor version of the node, e.g. 1.31 (set by packer/kubernetes/<minor>.pkrvars.hcl)."
  validation {
    # ^1\.[1-9][0-9]*$
    condition = try(
      length(split(".", var.kubernetes_version)) == 2
      && split(".", var.kubernetes_version)[0] == "1"
      && length(split(".", var.kubernetes_version)[1]) > 0
      && substr(split(".", var.kubernetes_version)[1], 0, 1) != "0"
      && length(trim(split(".", var.kubernetes_version)[1], "0123456789")) == 0,
      false,
    )
    error_message = "The kubernetes_version must be a Kubernetes minor version such as 1.31."
  }
}

variable "kubelet_version" {
  type        = string
  description = "Full EKS kubelet version of that minor, e.g. 1.31.3 (set by the per-minor vars file, or by `nodeforge build-vars --kubelet-version latest`)."
  validation {
    # ^[0-9]+\.[0-9]+\.[0-9]+$
    condition = try(
      length(split(".", var.kubelet_version)) == 3
      && length([for part in split(".", var.kubelet_version) : part if length(part) == 0 || length(trim(part, "0123456789")) > 0]) == 0,
      false,
    )
    error_message = "The kubelet_version must be a full version such as 1.31.3 (for the newest build of a minor, run `nodeforge build-vars MINOR --kubelet-version latest`: it lists the artifact source and pins what it finds)."
  }
}

variable "kubelet_build_date" {
  type        = string
  description = "Build date (YYYY-MM-DD) of kubelet_version in the EKS artifact bucket (set by the per-minor vars file)."
  validation {
    # ^[0-9]{4}-[0-9]{2}-[0-9]{2}$ and a real calendar date
    condition     = length(var.kubelet_build_date) == 10 && can(formatdate("YYYY", "${var.kubelet_build_date}T00:00:00Z"))
    error_message = "The kubelet_build_date must be a date such as 2024-12-12."
  }
}

variable "os" {
  type        = string
  description = "Base OS: al2023 (Amazon Linux 2023) or al2 (Amazon Linux 2, end of life 2026-06-30)."
  default     = "al2023"
  validation {
    condition     = contains(["al2023", "al2"], var.os)
    error_message = "The os must be al2023 or al2."
  }
}

variable "arch" {
  type        = string
  description = "CPU architecture: x86_64 or arm64 (Graviton)."
  default     = "x86_64"
  validation {
    condition     = contains(["x86_64", "arm64"], var.arch)
    error_message = "The arch must be x86_64 or arm64."
  }
}

# --- What goes into the image (inputs of playbooks/node.yml) --------------------------------------------------

variable "artifact_source" {
  type        = string
  description = "Where kubelet and friends come from, in the EKS bucket layout: an http(s) URL or an absolute folder on the machine running Packer."
  default     = "https://amazon-eks.s3.us-west-2.amazonaws.com"
  validation {
    # ^(https?://.+|/.*)$
    condition = (
      (substr(var.artifact_source, 0, 8) == "https://" && length(var.artifact_source) > 8)
      || (substr(var.artifact_source, 0, 7) == "http://" && length(var.artifact_source) > 7)
      || substr(var.artifact_source, 0, 1) == "/"
    )
    error_message = "The artifact_source must be an http(s) URL or an absolute folder path."
  }
}

variable "containerd_package_version" {
  type        = string
  description = "containerd package version (or prefix, e.g. 1.7.27) to install and version-lock; empty takes the OS repository's."
  default     = ""
  validation {
    # ^([0-9][0-9A-Za-z.:~_+-]{0,63})?$
    condition = var.containerd_package_version == "" || (
      length(var.containerd_package_version) <= 64
      && length(trim(substr(var.containerd_package_version, 0, 1), "0123456789")) == 0
      && length(trim(var.containerd_package_version, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.:~_+-")) == 0
    )
    error_message = "The containerd_package_version must be empty or a package version such as 1.7.27 (no wildcards)."
  }
}

variable "sandbox_image_archive_path" {
  type        = string
  description = "Path below artifact_source of an OCI archive of the pause image (with a .sha256 beside it), imported into containerd at build time so the first pod start pulls nothing; empty leaves it to the first pod start (with a warning)."
  default     = ""
  validation {
    condition     = var.sandbox_image_archive_path == "" || (length(split(" ", var.sandbox_image_archive_path)) == 1 && substr(var.sandbox_image_archive_path, 0, 1) != "/" && substr(var.sandbox_image_archive_path, length(var.sandbox_image_archive_path) - 4, 4) == ".tar")
    error_message = "The sandbox_image_archive_path must be empty or a relative path ending in .tar, without spaces."
  }
}

variable "time_sync_servers" {
  type        = list(string)
  description = "NTP servers chrony uses. The default is the Amazon Time Sync Service, reachable from every EC2 instance."
  default     = ["169.254.169.123"]
  validation {
    condition     = length(var.time_sync_servers) > 0 && length([for server in var.time_sync_servers : server if length(server) == 0 || length(server) > 253 || length(split(" ", server)) > 1]) == 0
    error_message = "The time_sync_servers must list at least one host name or address, without spaces."
  }
}

# --- Where and how to build -----------------------------------------------------------------------------------

variable "region" {
  type        = string
  description = "AWS region the build instance runs in and the AMI is registered in."
  default     = "us-west-2"
  validation {
    # ^[a-z]{2}(-[a-z]+){1,2}-[0-9]+$
    condition = try(
      length(split("-", var.region)) >= 3 && length(split("-", var.region)) <= 4
      && length(split("-", var.region)[0]) == 2
      && length([for part in slice(split("-", var.region), 0, length(split("-", var.region)) - 1) : part if length(part) == 0 || length(trim(part, "abcdefghijklmnopqrstuvwxyz")) > 0]) == 0
      && length(element(split("-", var.region), length(split("-", var.region)) - 1)) > 0
      && length(trim(element(split("-", var.region), length(split("-", var.region)) - 1), "0123456789")) == 0,
      false,
    )
    error_message = "The region must be an AWS region name such as us-east-1, ap-southeast-2 or us-gov-west-1."
  }
}

variable "instance_type" {
  type        = string
  description = "Build instance type; empty picks m6i.large for x86_64 and m6g.large for arm64. Must match arch."
  default     = ""
  validation {
    # ^([a-z0-9-]{2,}\.[a-z0-9-]+)?$
    condition = var.instance_type == "" || try(
      length(split(".", var.instance_type)) == 2
      && length(split(".", var.instance_type)[0]) > 1
      && length(split(".", var.instance_type)[1]) > 0
      && length(trim(var.instance_type, "abcdefghijklmnopqrstuvwxyz0123456789-.")) == 0,
      false,
    )
    error_message = "The instance_type must be empty or an EC2 instance type such as m6i.large."
  }
}

variable "source_ami_id" {
  type        = string
  description = "Start from this AMI instead of the newest Amazon Linux AMI matching the OS and arch."
  default     = ""
  validation {
    # ^(ami-([0-9a-f]{8}|[0-9a-f]{17}))?$
    condition = var.source_ami_id == "" || try(
      substr(var.source_ami_id, 0, 4) == "ami-"
      && contains([12, 21], length(var.source_ami_id))
      && length(trim(substr(var.source_ami_id, 4, -1), "0123456789abcdef")) == 0,
      false,
    )
    error_message = "The source_ami_id must be empty or an AMI id such as ami-0123456789abcdef0."
  }
}

variable "source_ami_name" {
  type        = string
  description = "AMI name pattern of the source image (wildcards allowed); empty uses the OS default (see locals.pkr.hcl)."
  default     = ""
  validation {
    condition     = length(var.source_ami_name) <= 128 && length(split(" ", var.source_ami_name)) == 1
    error_message = "The source_ami_name must be at most 128 characters, without spaces."
  }
}

variable "subnet_id" {
  type        = string
  description = "Subnet of the build instance; empty uses the default VPC's."
  default     = ""
  validation {
    # ^(subnet-([0-9a-f]{8}|[0-9a-f]{17}))?$
    condition = var.subnet_id == "" || try(
      substr(var.subnet_id, 0, 7) == "subnet-"
      && contains([15, 24], length(var.subnet_id))
      && length(trim(substr(var.subnet_id, 7, -1), "0123456789abcdef")) == 0,
      false,
    )
    error_message = "The subnet_id must be empty or a subnet id such as subnet-0123456789abcdef0."
  }
}

variable "subnet_filter" {
  type        = map(string)
  description = "EC2 DescribeSubnets filters (name = value, e.g. \"tag:Name\" = \"build-*\") choosing the build subnet with the most free addresses; empty for none. Not together with subnet_id."
  default     = {}
  validation {
    condition     = length([for name, value in var.subnet_filter : name if length(name) == 0 || length(value) == 0]) == 0
    error_message = "The subnet_filter must map non-empty filter names to non-empty values."
  }
}

variable "vpc_filter" {
  type        = map(string)
  description = "EC2 DescribeVpcs filters (name = value) choosing the build VPC (exactly one must match); empty for none. Needs subnet_id or subnet_filter."
  default     = {}
  validation {
    condition     = length([for name, value in var.vpc_filter : name if length(name) == 0 || length(value) == 0]) == 0
    error_message = "The vpc_filter must map non-empty filter names to non-empty values."
  }
}

variable "associate_public_ip_address" {
  type        = string
  description = "Give the build instance a public IP: \"true\", \"false\" (e.g. a private subnet reached over session_manager), or empty for the subnet's default."
  default     = ""
  validation {
    condition     = contains(["", "true", "false"], var.associate_public_ip_address)
    error_message = "The associate_public_ip_address must be empty, true or false."
  }
}

variable "security_group_ids" {
  type        = list(string)
  description = "Existing security groups of the build instance (they must admit SSH from the machine running Packer, unless session_manager); empty makes a temporary group admitting ssh_source_cidrs."
  default     = []
  validation {
    # every entry: ^sg-([0-9a-f]{8}|[0-9a-f]{17})$
    condition     = length([for id in var.security_group_ids : id if false == try(substr(id, 0, 3) == "sg-" && contains([11, 20], length(id)) && length(trim(substr(id, 3, -1), "0123456789abcdef")) == 0, false)]) == 0
    error_message = "The security_group_ids must be security group ids such as sg-0123456789abcdef0."
  }
}

variable "ec2_endpoint" {
  type        = string
  description = "Custom EC2 API endpoint (https URL, e.g. a VPC interface endpoint); empty uses the region's."
  default     = ""
  validation {
    # ^(https://[^ ]+)?$
    condition     = var.ec2_endpoint == "" || (substr(var.ec2_endpoint, 0, 8) == "https://" && length(var.ec2_endpoint) > 8 && length(split(" ", var.ec2_endpoint)) == 1)
    error_message = "The ec2_endpoint must be empty or an https URL."
  }
}

variable "source_ami_owners" {
  type        = list(string)
  description = "Owners the source AMI filter accepts: 12-digit account ids or the aliases amazon, self, aws-marketplace (default amazon, which covers Amazon Linux in every partition)."
  default     = ["amazon"]
  validation {
    # every entry: ^([0-9]{12}|amazon|self|aws-marketplace)$, at least one
    condition     = length(var.source_ami_owners) > 0 && length([for owner in var.source_ami_owners : owner if false == (contains(["amazon", "self", "aws-marketplace"], owner) || (length(owner) == 12 && length(trim(owner, "0123456789")) == 0))]) == 0
    error_message = "The source_ami_owners must list 12-digit account ids or amazon, self, aws-marketplace (at least one)."
  }
}

variable "ssh_interface" {
  type        = string
  description = "How Packer reaches the build instance: empty (public IP if it has one), public_ip, private_ip, public_dns, private_dns or session_manager (needs iam_instance_profile with AmazonSSMManagedInstanceCore, and the session-manager-plugin where Packer runs)."
  default     = ""
  validation {
    condition     = contains(["", "public_ip", "private_ip", "public_dns", "private_dns", "session_manager"], var.ssh_interface)
    error_message = "The ssh_interface must be empty, public_ip, private_ip, public_dns, private_dns or session_manager."
  }
}

variable "ssh_source_cidrs" {
  type        = list(string)
  description = "CIDRs the temporary security group admits SSH from; empty lets Packer choose (0.0.0.0/0)."
  default     = []
  validation {
    condition     = length([for cidr in var.ssh_source_cidrs : cidr if length(split("/", cidr)) != 2 || can(cidrhost(cidr, 0)) == false]) == 0
    error_message = "The ssh_source_cidrs must be CIDR blocks such as 203.0.113.0/24."
  }
}

variable "iam_instance_profile" {
  type        = string
  description = "Instance profile of the build instance (needed for ssh_interface = session_manager); empty for none."
  default     = ""
  validation {
    # ^[A-Za-z0-9+=,.@_-]{0,128}$
    condition     = length(var.iam_instance_profile) <= 128 && length(trim(var.iam_instance_profile, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+=,.@_-")) == 0
    error_message = "The iam_instance_profile must be an instance profile name (letters, digits and +=,.@_-, at most 128)."
  }
}

# --- Root volume and encryption -------------------------------------------------------------------------------

variable "root_volume_type" {
  type        = string
  description = "EBS type of the root volume: gp3 (root_volume_iops and root_volume_throughput apply), gp2, io1 or io2 (root_volume_iops applies)."
  default     = "gp3"
  validation {
    condition     = contains(["gp3", "gp2", "io1", "io2"], var.root_volume_type)
    error_message = "The root_volume_type must be gp3, gp2, io1 or io2 (st1 and sc1 cannot be boot volumes)."
  }
}

variable "root_volume_size" {
  type        = number
  description = "Root volume size in GiB. Nodes launched from the AMI get at least this much."
  default     = 20
  validation {
    condition     = var.root_volume_size >= 20 && var.root_volume_size <= 1024 && floor(var.root_volume_size) == var.root_volume_size
    error_message = "The root_volume_size must be a whole number of GiB from 20 to 1024."
  }
}

variable "root_volume_iops" {
  type        = number
  description = "Provisioned IOPS of a gp3, io1 or io2 root volume (3000 is gp3's free baseline; must stay 3000 for gp2)."
  default     = 3000
  validation {
    condition     = var.root_volume_iops >= 3000 && var.root_volume_iops <= 16000 && floor(var.root_volume_iops) == var.root_volume_iops
    error_message = "The root_volume_iops must be a whole number from 3000 to 16000."
  }
}

variable "root_volume_throughput" {
  type        = number
  description = "Throughput of a gp3 root volume in MiB/s (125 is the free baseline; must stay 125 for other types)."
  default     = 125
  validation {
    condition     = var.root_volume_throughput >= 125 && var.root_volume_throughput <= 1000 && floor(var.root_volume_throughput) == var.root_volume_throughput
    error_message = "The root_volume_throughput must be a whole number of MiB/s from 125 to 1000."
  }
}

variable "kms_key_id" {
  type        = string
  description = "KMS key (id, mrk- id, alias/NAME or ARN) encrypting the root volume and AMI in region; empty uses the account's EBS default key. Sharing with ami_users needs a customer managed key."
  default     = ""
  validation {
    # ^(|ID|alias/[A-Za-z0-9/_-]+|arn:aws(-us-gov)?:kms:REGION:[0-9]{12}:(key/ID|alias/[A-Za-z0-9/_-]+))$
    #   with ID = [0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12} or mrk-[0-9a-f]{32} (what the amazon plugin accepts).
    # The one-element for expressions name the ARN fields, the resource and the key id (HCL has no let).
    condition = var.kms_key_id == "" || try(
      [for parts in [split(":", var.kms_key_id)] : [for resource in [length(parts) == 6 ? parts[5] : var.kms_key_id] : [for id in [length(parts) == 6 && substr(resource, 0, 4) == "key/" ? substr(resource, 4, -1) : resource] :
        (length(parts) == 1 || try(
          length(parts) == 6
          && parts[0] == "arn"
          && contains(["aws", "aws-us-gov"], parts[1])
          && parts[2] == "kms"
          && length(parts[3]) > 0
          && length(parts[4]) == 12
          && length(trim(parts[4], "0123456789")) == 0
          && (substr(resource, 0, 4) == "key/" || substr(resource, 0, 6) == "alias/"),
          false,
        ))
        && (
          (join(",", [for part in split("-", id) : length(part)]) == "8,4,4,4,12" && length(trim(id, "0123456789abcdef-")) == 0)
          || (substr(id, 0, 4) == "mrk-" && length(id) == 36 && length(trim(substr(id, 4, -1), "0123456789abcdef")) == 0)
          || (substr(id, 0, 6) == "alias/" && length(id) > 6 && length(trim(substr(id, 6, -1), "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/_-")) == 0)
        )
      ][0]][0]][0],
      false,
    )
    error_message = "The kms_key_id must be empty, a key id, an mrk- id, alias/NAME or a KMS key or alias ARN (aws or aws-us-gov)."
  }
}

variable "region_kms_key_ids" {
  type        = map(string)
  description = "KMS key per region (region = key id, alias or ARN in that region; \"\" for its default EBS key). When set it must name exactly the ami_regions; kms_key_id covers the build region."
  default     = {}
  validation {
    # keys: regions as in var.region; values: "" or a key as in var.kms_key_id (an ARN must be of that region).
    condition = (
      length([for region in keys(var.region_kms_key_ids) : region if false == try(
        length(split("-", region)) >= 3 && length(split("-", region)) <= 4
        && length(split("-", region)[0]) == 2
        && length([for part in slice(split("-", region), 0, length(split("-", region)) - 1) : part if length(part) == 0 || length(trim(part, "abcdefghijklmnopqrstuvwxyz")) > 0]) == 0
        && length(element(split("-", region), length(split("-", region)) - 1)) > 0
        && length(trim(element(split("-", region), length(split("-", region)) - 1), "0123456789")) == 0,
        false,
      )]) == 0
      && length([for region, key in var.region_kms_key_ids : region if false == (key == "" || try(
        [for parts in [split(":", key)] : [for resource in [length(parts) == 6 ? parts[5] : key] : [for id in [length(parts) == 6 && substr(resource, 0, 4) == "key/" ? substr(resource, 4, -1) : resource] :
          (length(parts) == 1 || try(
            length(parts) == 6
            && parts[0] == "arn"
            && contains(["aws", "aws-us-gov"], parts[1])
            && parts[2] == "kms"
            && parts[3] == region
            && length(parts[4]) == 12
            && length(trim(parts[4], "0123456789")) == 0
            && (substr(resource, 0, 4) == "key/" || substr(resource, 0, 6) == "alias/"),
            false,
          ))
          && (
            (join(",", [for part in split("-", id) : length(part)]) == "8,4,4,4,12" && length(trim(id, "0123456789abcdef-")) == 0)
            || (substr(id, 0, 4) == "mrk-" && length(id) == 36 && length(trim(substr(id, 4, -1), "0123456789abcdef")) == 0)
            || (substr(id, 0, 6) == "alias/" && length(id) > 6 && length(trim(substr(id, 6, -1), "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/_-")) == 0)
          )
        ][0]][0]][0],
        false,
      ))]) == 0
    )
    error_message = "The region_kms_key_ids must map region names (such as eu-west-1) to \"\", a key id, alias/NAME or a KMS ARN of that region."
  }
}

# --- Distribution ---------------------------------------------------------------------------------------------

variable "ami_regions" {
  type        = list(string)
  description = "Regions the finished AMI is copied to (besides region)."
  default     = []
  validation {
    # every entry: ^[a-z]{2}(-[a-z]+){1,2}-[0-9]+$, no duplicates
    condition = length(distinct(var.ami_regions)) == length(var.ami_regions) && length([for region in var.ami_regions : region if false == try(
      length(split("-", region)) >= 3 && length(split("-", region)) <= 4
      && length(split("-", region)[0]) == 2
      && length([for part in slice(split("-", region), 0, length(split("-", region)) - 1) : part if length(part) == 0 || length(trim(part, "abcdefghijklmnopqrstuvwxyz")) > 0]) == 0
      && length(element(split("-", region), length(split("-", region)) - 1)) > 0
      && length(trim(element(split("-", region), length(split("-", region)) - 1), "0123456789")) == 0,
      false,
    )]) == 0
    error_message = "The ami_regions must be distinct AWS region names such as eu-west-1."
  }
}

variable "ami_users" {
  type        = list(string)
  description = "AWS account ids the AMI and its snapshots are shared with (needs kms_key_id: a customer managed key those accounts may use)."
  default     = []
  validation {
    # every entry: ^[0-9]{12}$
    condition     = length([for account in var.ami_users : account if length(account) != 12 || length(trim(account, "0123456789")) > 0]) == 0
    error_message = "The ami_users must be 12-digit AWS account ids."
  }
}

variable "ami_org_arns" {
  type        = list(string)
  description = "AWS Organizations ARNs the AMI is shared with (arn:aws:organizations::ACCOUNT:organization/o-ID)."
  default     = []
  validation {
    condition     = length([for arn in var.ami_org_arns : arn if false == try(length(split(":", arn)) == 6 && split(":", arn)[0] == "arn" && split(":", arn)[2] == "organizations" && substr(split(":", arn)[5], 0, 15) == "organization/o-", false)]) == 0
    error_message = "The ami_org_arns must be organization ARNs such as arn:aws:organizations::123456789012:organization/o-abc123."
  }
}

variable "ami_ou_arns" {
  type        = list(string)
  description = "AWS Organizations organizational unit ARNs the AMI is shared with (arn:aws:organizations::ACCOUNT:ou/o-ID/ou-ID)."
  default     = []
  validation {
    condition     = length([for arn in var.ami_ou_arns : arn if false == try(length(split(":", arn)) == 6 && split(":", arn)[0] == "arn" && split(":", arn)[2] == "organizations" && substr(split(":", arn)[5], 0, 5) == "ou/o-", false)]) == 0
    error_message = "The ami_ou_arns must be organizational unit ARNs such as arn:aws:organizations::123456789012:ou/o-abc123/ou-ab12-cd34ef56."
  }
}

variable "deprecate_at" {
  type        = string
  description = "When EC2 marks the AMI deprecated (RFC 3339, e.g. 2027-01-01T00:00:00Z); empty never."
  default     = ""
  validation {
    condition     = var.deprecate_at == "" || can(formatdate("YYYY", var.deprecate_at))
    error_message = "The deprecate_at must be empty or an RFC 3339 time such as 2027-01-01T00:00:00Z."
  }
}

# --- Naming, provenance and outputs ---------------------------------------------------------------------------

variable "image_name_prefix" {
  type        = string
  description = "AMI names are <prefix>-<kubernetes_version>-<os>-<arch>-<build_id>."
  default     = "nodeforge-eks-node"
  validation {
    # ^[A-Za-z0-9()./_-]{3,64}$
    condition     = length(var.image_name_prefix) >= 3 && length(var.image_name_prefix) <= 64 && length(trim(var.image_name_prefix, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789()./_-")) == 0
    error_message = "The image_name_prefix must be 3 to 64 letters, digits or ()./_- characters."
  }
}

variable "build_id" {
  type        = string
  description = "Identifier of this build (AMI name suffix, tag, manifest); empty uses the UTC start time, e.g. 20250101T120000Z."
  default     = ""
  validation {
    # ^[A-Za-z0-9._-]{0,40}$
    condition     = length(var.build_id) <= 40 && length(trim(var.build_id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")) == 0
    error_message = "The build_id must be at most 40 letters, digits or ._- characters."
  }
}

variable "git_commit" {
  type        = string
  description = "Commit of nodeforge the image is built from (recorded in tags and the manifest)."
  default     = "unknown"
  validation {
    condition     = length(var.git_commit) > 0 && length(var.git_commit) <= 64 && length(split(" ", var.git_commit)) == 1
    error_message = "The git_commit must be 1 to 64 characters without spaces."
  }
}

variable "extra_tags" {
  type        = map(string)
  description = "More tags for the AMI, its snapshots and the build instance. The template's own tags win on a clash."
  default     = {}
  validation {
    condition     = length(var.extra_tags) <= 30 && length([for key, value in var.extra_tags : key if length(key) == 0 || length(key) > 128 || length(value) > 256 || substr(lower(key), 0, 4) == "aws:" || substr(lower(key), 0, 10) == "nodeforge:"]) == 0
    error_message = "The extra_tags must have at most 30 entries, keys of 1 to 128 characters not starting with aws: or nodeforge:, values of at most 256."
  }
}

variable "manifest_path" {
  type        = string
  description = "Where the Packer manifest (the catalog's input) is written; the image's component manifest is copied beside it."
  default     = "build/eks-node/manifest.json"
  validation {
    condition     = length(var.manifest_path) > 5 && substr(var.manifest_path, length(var.manifest_path) - 5, 5) == ".json"
    error_message = "The manifest_path must be a path ending in .json."
  }
}

variable "nodeforge_command" {
  type        = string
  description = "How the post-processors and the self-verification step run the nodeforge CLI on the machine running Packer (the checkout's venv: nodeforge, or e.g. .venv/bin/nodeforge)."
  default     = "nodeforge"
  validation {
    condition     = length(var.nodeforge_command) > 0 && length(split("'", var.nodeforge_command)) == 1
    error_message = "The nodeforge_command must be a non-empty command without single quotes."
  }
}
