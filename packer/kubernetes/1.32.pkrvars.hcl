# Kubernetes 1.32: the EKS kubelet build nodeforge bakes for this minor.
# Must match kubelet_releases in roles/kubelet/defaults/main.yml (tests/unit/packer checks it).
kubernetes_version = "1.32"
kubelet_version    = "1.32.0"
kubelet_build_date = "2024-12-20"
