# Inputs of the immutable AMI: the A/B disk `nodeforge image disk create` made, and where the AMI goes.

variable "region" {
  type        = string
  default     = "us-west-2"
  description = "Region of the builder instance and the AMI."
}

variable "disk_image" {
  type        = string
  description = "The sealed A/B disk image (nodeforge image disk create --out DISK): written as-is onto the AMI's root volume."
}

variable "disk_sha256" {
  type        = string
  description = "sha256 of disk_image: the builder checks the upload and the written volume against it."
  validation {
    condition     = length(var.disk_sha256) == 64 && length(trim(lower(var.disk_sha256), "0123456789abcdef")) == 0
    error_message = "The disk_sha256 value must be a sha256 (64 hex digits), e.g. from `sha256sum DISK`."
  }
}

variable "root_hash" {
  type        = string
  description = "dm-verity root hash of slot A (seal.json root_hash): recorded as a tag and in the manifest."
  validation {
    condition     = length(var.root_hash) == 64 && length(trim(lower(var.root_hash), "0123456789abcdef")) == 0
    error_message = "The root_hash value must be the sealed root's dm-verity root hash (64 hex digits)."
  }
}

variable "signing_key" {
  type        = string
  default     = ""
  description = "Fingerprint (sha256:HEX) of the key that signed the root hash (seal.json signature.key); empty if unsigned."
}

variable "volume_size" {
  type        = number
  default     = 8
  description = "Root volume size in GiB; at least the disk image's size (the builder checks)."
  validation {
    condition     = var.volume_size >= 2 && var.volume_size <= 1024
    error_message = "The volume_size value must be between 2 and 1024 GiB."
  }
}

variable "kms_key_id" {
  type        = string
  default     = ""
  description = "KMS key for the encrypted volume, snapshot and AMI; empty: the account's default EBS key."
}

variable "region_kms_key_ids" {
  type        = map(string)
  default     = {}
  description = "KMS key per copy region (ami_regions)."
}

variable "ami_regions" {
  type        = list(string)
  default     = []
  description = "Regions to copy the AMI to."
}

variable "ami_users" {
  type        = list(string)
  default     = []
  description = "Account IDs allowed to launch the AMI."
}

variable "kubernetes_version" {
  type        = string
  default     = "1.31"
  description = "Kubernetes minor of the sealed node (catalog key)."
}

variable "builder_instance_type" {
  type        = string
  default     = "m6i.large"
  description = "Builder instance (Nitro, x86_64): it only copies the disk onto the attached volume."
}

variable "builder_source_ami_id" {
  type        = string
  default     = ""
  description = "AMI of the builder instance; empty: the newest Amazon Linux 2023 x86_64 AMI published by Amazon."
}

variable "subnet_id" {
  type        = string
  default     = ""
  description = "Subnet of the builder instance (empty: the default VPC)."
}

variable "ssh_source_cidrs" {
  type        = list(string)
  default     = []
  description = "CIDRs allowed to reach the builder over SSH (empty: the builder's public IP detection)."
}

variable "manifest_path" {
  type        = string
  default     = "build/immutable-ami/manifest.json"
  description = "Packer manifest (the catalog's input)."
}

variable "git_commit" {
  type        = string
  default     = ""
  description = "Commit the image was built from (catalog key)."
}
