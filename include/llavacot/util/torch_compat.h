// The one place for differences between the LibTorch versions we support: 2.15 (the pinned wheel used for
// development and CI) and 2.11 (the GPU machine). Code that needs a version-specific API branches here and
// nowhere else.
#pragma once

#include <torch/version.h>

/// True when the LibTorch being compiled against is at least MAJOR.MINOR.
#define LLAVACOT_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

#if !LLAVACOT_TORCH_AT_LEAST(2, 11)
#error "llavacot needs LibTorch 2.11 or newer"
#endif
