#!/bin/bash
set -ex
/etc/eks/bootstrap.sh eksctl-demo \
  --apiserver-endpoint https://4E2A1F0D8B6C3E5A7B9C.gr7.us-west-2.eks.amazonaws.com \
  --b64-cluster-ca LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUJkekNDQVIyZ0F3SUJBZ0lVVGVzdE9ubHlOb3RBUmVhbENlcnRpZmljYXRlRm9yTm9kZWZvcmdlMHdDZ1lJS29aSXpqMEVBd0l3CkZURVRNQkVHQTFVRUF4TUthM1ZpWlhKdVpYUmxjekFlRncweU5UQXhNREV3TURBd01EQmFGdzB6TlRBeE1ERXdNREF3TURCYQotLS0tLUVORCBDRVJUSUZJQ0FURS0tLS0tCg== \
  --dns-cluster-ip 10.100.0.10 \
  --kubelet-extra-args "--node-labels=alpha.eksctl.io/cluster-name=eksctl-demo,alpha.eksctl.io/nodegroup-name=ng-1 --register-with-taints=dedicated=gpu:NoSchedule"
