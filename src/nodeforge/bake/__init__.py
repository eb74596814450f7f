"""The local bake: base image, fixtures and mirror, Packer build in Docker, hygiene scan, node checks.

Modules: :mod:`.base` (mmdebstrap base image), :mod:`.fixtures` and :mod:`.mirror` (stand-in EKS artifacts on
127.0.0.1), :mod:`.docker` (systemd instances), :mod:`.pipeline` (the bake's stages), :mod:`.hygiene` (image
scan), :mod:`.verify` (tests/infra against an image, an instance or a booted VM).
"""
