#!/bin/sh
# Runs on the amazon-ebssurrogate builder (as root): write the uploaded sealed disk image onto the attached
# volume, checking it against NODEFORGE_DISK_SHA256 before and after, then move the GPT's backup header to
# the end of the (larger) volume. Any mismatch stops the build: no AMI is registered from a bad volume.
set -eu
: "${NODEFORGE_UPLOAD:?}" "${NODEFORGE_DISK_SHA256:?}" "${NODEFORGE_DEVICE:?}"

dev=$(readlink -f "$NODEFORGE_DEVICE" 2>/dev/null || true)
if [ ! -b "$dev" ]; then
    # Nitro: the volume is an NVMe namespace; the EBS device name is in its vendor data (ebsnvme-id on AL2023).
    want=$(basename "$NODEFORGE_DEVICE")
    for candidate in /dev/nvme*n1; do
        name=$(ebsnvme-id -b "$candidate" 2>/dev/null || true)
        case "${name#/dev/}" in
            "$want" | "sd${want#xvd}") dev=$candidate ;;
        esac
    done
fi
[ -b "$dev" ] || { echo "write-disk: no block device for $NODEFORGE_DEVICE" >&2; exit 1; }
if lsblk -no MOUNTPOINT "$dev" | grep -q .; then
    echo "write-disk: $dev ($NODEFORGE_DEVICE) is mounted: not the empty target volume" >&2
    exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar --sparse -xzf "$NODEFORGE_UPLOAD" -C "$work"
image=$(find "$work" -type f | head -n 1)
echo "$NODEFORGE_DISK_SHA256  $image" | sha256sum -c --quiet
size=$(stat -c %s "$image")
volume=$(blockdev --getsize64 "$dev")
if [ "$size" -gt "$volume" ]; then
    echo "write-disk: image is $size bytes, $dev only $volume: raise volume_size" >&2
    exit 1
fi

# A fresh EBS volume reads as zeros: skip writing the image's holes.
dd if="$image" of="$dev" bs=4M conv=sparse,fsync status=none
sync
written=$(head -c "$size" "$dev" | sha256sum | cut -d' ' -f1)
if [ "$written" != "$NODEFORGE_DISK_SHA256" ]; then
    echo "write-disk: $dev holds $written after writing, not $NODEFORGE_DISK_SHA256" >&2
    exit 1
fi
sfdisk --relocate gpt-bak-std "$dev"
sfdisk --verify "$dev"
sync
echo "write-disk: $size bytes written to $dev ($NODEFORGE_DEVICE), sha256 $written"
