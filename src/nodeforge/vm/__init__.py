"""Disks and virtual machines: bootable disk images of a baked root, and QEMU launched like an EC2 instance.

Modules: :mod:`.disk` (root filesystem tar -> ext4 root, boot probe), :mod:`.imds` (fake IMDSv2 on 127.0.0.1).
"""
