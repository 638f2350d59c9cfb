"""Search spaces the tests write to disk."""

# the inas structure (7 stages, 5 levels) at the smallest size: LUT builds of it take seconds
MICRO_SPACE = """\
name: micro
description: inas structure at the smallest size, for tests
resolutions: [32]
stem: {widths: [4], kernel_size: 3, stride: 2}
se_ratio: 0.25
stages:
  - {expand_ratio: 1, stride: 1, widths: [4], depths: [1], kernel_sizes: [3]}
  - {expand_ratio: 2, stride: 2, widths: [4], depths: [1], kernel_sizes: [3]}
  - {expand_ratio: 2, stride: 2, widths: [8], depths: [1], kernel_sizes: [3]}
  - {expand_ratio: 2, stride: 2, widths: [8], depths: [1], kernel_sizes: [3]}
  - {expand_ratio: 2, stride: 1, widths: [8], depths: [1], kernel_sizes: [3]}
  - {expand_ratio: 2, stride: 2, widths: [8], depths: [1], kernel_sizes: [3]}
  - {expand_ratio: 2, stride: 1, widths: [8], depths: [1], kernel_sizes: [3]}
head:
  level_stages: [1, 2, 3, 5, 7]
  channels: [4, 4, 8, 8, 8]
  transport_kernel_sizes: [3]
  decoder_kernel_sizes: [3]
"""
