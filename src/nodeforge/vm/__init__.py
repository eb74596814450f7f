"""Disks and virtual machines: bootable disk images of a baked root, and QEMU launched like an EC2 instance.

Both variants' disks and boots live here:

* :mod:`.disk` -- root filesystem tar -> ext4 root, the boot probe, the direct-kernel boot check
* :mod:`.bootdisk` -- the mutable variant's self-booting GPT disk (GRUB for BIOS and UEFI, like an AL2023 AMI)
* :mod:`.ab_disk`, :mod:`.ab_grub`, :mod:`.grubenv` -- the immutable variant's A/B disk, GRUB's slot choice and
  the grubenv it keeps slot state in
* :mod:`.qemu` -- QEMU launched like an EC2 instance; :mod:`.imds` -- fake IMDSv2 on 127.0.0.1
* :mod:`.launch` (+ :mod:`.launch_cli`, :mod:`.node_probe`) -- first boot with user data, what the node did
* :mod:`.ab_boot` -- power on the A/B disk from the disk alone and check the sealed-root facts
"""
