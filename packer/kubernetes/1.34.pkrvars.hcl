# Kubernetes 1.34: the EKS kubelet build nodeforge bakes for this minor (amazon-eks-ami release v20260714 ships it).
# Must match kubelet_releases in roles/kubelet/defaults/main.yml (tests/unit/packer checks it).
# Amazon Linux 2 cannot carry it: EKS publishes no AL2 node for 1.33 and later (nodeforge build-vars refuses os=al2).
kubernetes_version = "1.34"
kubelet_version    = "1.34.9"
kubelet_build_date = "2026-07-05"
