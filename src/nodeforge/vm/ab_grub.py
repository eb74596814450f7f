"""The A/B disk's own boot loader: GRUB reads the slot state from a grubenv on the ESP, picks a slot, counts the try.

Slot state lives in one place, the GRUB environment block ``/grub/grubenv`` on the EFI system partition
(:mod:`nodeforge.vm.grubenv`); the host tools (``nodeforge image status / update / mark-successful /
rollback``) and GRUB itself read and write the same 1024 bytes. Variables, per slot ``S`` in ``a``, ``b``:

=====================  ==============================================================================
``nf_S_priority``      0 (disabled) .. 15; the bootable slot with the highest priority boots (tie: A)
``nf_S_tries``         boot attempts left while not successful; GRUB takes one before booting the slot
``nf_S_ok``            1 once a boot of the slot was marked successful, else 0
``nf_S_roothash``      dm-verity root hash (empty: the slot holds nothing bootable)
``nf_S_hashoffset``    byte offset of the hash tree in the slot partition
``nf_S_kernel``        the kernel as a GRUB blocklist ``START+COUNT`` (512-byte sectors of the slot partition)
``nf_S_initrd``        the initramfs, likewise
``nf_boot``            the slot GRUB booted last (written by GRUB with the try it took)
``nf_cmdline``         extra kernel arguments (empty on a shipped disk; the host's boot check sets its own)
``nf_gen``, ``nf_note``  host-side change counter and note (``status`` shows them)
=====================  ==============================================================================

A slot is bootable when it has a root hash, ``priority > 0`` and (``ok`` or ``tries > 0``). GRUB's script has no
arithmetic, so the decrement is spelled out per value (as Fedora's boot counting does). :func:`choose` is the same
logic in Python (the unit tests' oracle, and what ``update.begin_boot`` simulates); the e2e test proves GRUB's
script agrees with it by booting the disk.
"""

from __future__ import annotations

from collections.abc import Mapping

SLOTS = ("a", "b")
MAX_TRIES = 15
ENV_PATH = "/grub/grubenv"
CFG_PATH = "/grub/grub.cfg"
GRUB_MARK = "nodeforge-grub:"
#: GRUB modules built into the core images (besides nodeforge.vm.bootdisk's): FAT (the ESP holds grub.cfg and
#: grubenv on both firmwares), load_env/save_env, regexp (the disk of $root), halt.
GRUB_MODULES = ("fat", "loadenv", "regexp", "halt", "sleep", "test", "echo")
BASE_ARGS = ("ro", "console=tty0", "console=ttyS0,115200n8")


def var(slot: str, name: str) -> str:
    return f"nf_{slot}_{name}"


def _num(value: str | None) -> int:
    try:
        return int(value or "0")
    except ValueError:
        return 0


def bootable(env: Mapping[str, str], slot: str) -> bool:
    """What GRUB's script tests: a root hash, priority > 0, and successful or tries left."""
    if not env.get(var(slot, "roothash")) or _num(env.get(var(slot, "priority"))) <= 0:
        return False
    return env.get(var(slot, "ok")) == "1" or _num(env.get(var(slot, "tries"))) > 0


def choose(env: Mapping[str, str]) -> tuple[str | None, dict[str, str]]:
    """The slot GRUB boots with ``env`` and the variables its ``save_env`` writes (``{}`` when none boots)."""
    slot = None
    for candidate in SLOTS:
        if bootable(env, candidate) and (
            slot is None or _num(env.get(var(candidate, "priority"))) > _num(env.get(var(slot, "priority")))
        ):
            slot = candidate
    if slot is None:
        return None, {}
    tries = _num(env.get(var(slot, "tries")))
    if env.get(var(slot, "ok")) != "1" and 1 <= tries <= MAX_TRIES:
        tries -= 1
    return slot, {var(slot, "tries"): str(tries), "nf_boot": slot}


def grub_cfg(partitions: Mapping[str, int]) -> str:
    """``/grub/grub.cfg`` on the ESP: load the grubenv, choose a slot, take a try, boot its kernel from the slot.

    ``partitions`` maps each slot to its GPT partition number.
    """
    lines = [
        "# nodeforge A/B boot loader configuration (nodeforge.vm.ab_grub); slot state: $prefix/grubenv.",
        "serial --unit=0 --speed=115200",
        "terminal_input serial console",
        "terminal_output serial console",
        "set timeout=0",
        'set nf_env="$prefix/grubenv"',
        'load_env --file "$nf_env"',
        "regexp --set 1:nf_disk '^([^,]+)' \"$root\"",
    ]
    for slot in SLOTS:
        lines += [
            f"set nf_{slot}_ready=0",
            f'if [ -n "${var(slot, "roothash")}" ]; then',
            f'  if [ "${var(slot, "priority")}" -gt 0 ]; then',
            f'    if [ "${var(slot, "ok")}" = 1 ]; then set nf_{slot}_ready=1',
            f'    elif [ "${var(slot, "tries")}" -gt 0 ]; then set nf_{slot}_ready=1',
            "    fi",
            "  fi",
            "fi",
        ]
    lines += [
        'set nf_slot=""',
        'if [ "$nf_a_ready" = 1 ]; then set nf_slot=a; fi',
        'if [ "$nf_b_ready" = 1 ]; then',
        '  if [ -z "$nf_slot" ]; then set nf_slot=b',
        '  elif [ "$nf_b_priority" -gt "$nf_a_priority" ]; then set nf_slot=b',
        "  fi",
        "fi",
        'if [ -z "$nf_slot" ]; then',
        f'  echo "{GRUB_MARK} no bootable slot: A priority $nf_a_priority tries $nf_a_tries ok $nf_a_ok,'
        f' B priority $nf_b_priority tries $nf_b_tries ok $nf_b_ok"',
        "  sleep 5",
        "  halt",
        "fi",
    ]
    for slot in SLOTS:
        tries = var(slot, "tries")
        lines += [f'if [ "$nf_slot" = {slot} ]; then', f'  if [ "${var(slot, "ok")}" != 1 ]; then']
        for n in range(MAX_TRIES, 0, -1):
            keyword = "if" if n == MAX_TRIES else "elif"
            lines.append(f'    {keyword} [ "${tries}" = {n} ]; then set {tries}={n - 1}')
        lines += [
            "    fi",
            "  fi",
            f"  set nf_boot={slot}",
            f'  save_env --file "$nf_env" {tries} nf_boot',
            f"  set nf_part={partitions[slot]}",
            f'  set nf_tries="${tries}"',
            f'  set nf_ok="${var(slot, "ok")}"',
            f'  set nf_roothash="${var(slot, "roothash")}"',
            f'  set nf_hashoffset="${var(slot, "hashoffset")}"',
            f'  set nf_kernel="${var(slot, "kernel")}"',
            f'  set nf_initrd="${var(slot, "initrd")}"',
            "fi",
        ]
    args = " ".join(BASE_ARGS)
    lines += [
        f'echo "{GRUB_MARK} booting slot $nf_slot (ok $nf_ok, tries left $nf_tries) root hash $nf_roothash'
        f' from ($nf_disk,gpt$nf_part) ($grub_platform)"',
        "linux ($nf_disk,gpt$nf_part)$nf_kernel root=/dev/mapper/nf-root nodeforge.slot=$nf_slot"
        f" nodeforge.roothash=$nf_roothash nodeforge.hashoffset=$nf_hashoffset {args} $nf_cmdline",
        "initrd ($nf_disk,gpt$nf_part)$nf_initrd",
        "boot",
        "",
    ]
    return "\n".join(lines)


def early_cfg(esp_volume_id: str) -> str:
    """The configuration built into GRUB's core images: find the ESP by its FAT volume id, read grub.cfg there."""
    search = f"search --no-floppy --fs-uuid --set=root {esp_volume_id}"
    return f"{search}\nset prefix=($root)/grub\nconfigfile $prefix/grub.cfg\n"


def blocklist(offset: int, size: int) -> str:
    """GRUB blocklist ``START+COUNT`` (512-byte sectors) for ``size`` bytes at byte ``offset`` of a partition."""
    if offset % 512:
        raise ValueError(f"offset {offset} is not sector aligned")
    return f"{offset // 512}+{-(-size // 512)}"
