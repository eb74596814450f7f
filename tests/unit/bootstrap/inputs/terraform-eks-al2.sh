#!/bin/bash
set -e
echo "pre-bootstrap user data"
export SERVICE_IPV4_CIDR=172.20.0.0/16
B64_CLUSTER_CA=LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUJkekNDQVIyZ0F3SUJBZ0lVVGVzdE9ubHlOb3RBUmVhbENlcnRpZmljYXRlRm9yTm9kZWZvcmdlMHdDZ1lJS29aSXpqMEVBd0l3CkZURVRNQkVHQTFVRUF4TUthM1ZpWlhKdVpYUmxjekFlRncweU5UQXhNREV3TURBd01EQmFGdzB6TlRBeE1ERXdNREF3TURCYQotLS0tLUVORCBDRVJUSUZJQ0FURS0tLS0tCg==
API_SERVER_URL=https://4E2A1F0D8B6C3E5A7B9C.gr7.us-west-2.eks.amazonaws.com
/etc/eks/bootstrap.sh tf-demo --kubelet-extra-args '--node-labels=node.kubernetes.io/lifecycle=spot' --container-runtime containerd --b64-cluster-ca $B64_CLUSTER_CA --apiserver-endpoint $API_SERVER_URL
echo "post-bootstrap user data"
