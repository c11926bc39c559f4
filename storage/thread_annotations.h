// Short names for Clang's thread-safety annotations (absl's macros). Under
// GCC they expand to nothing and still document which mutex guards what.
#pragma once

#include "absl/base/thread_annotations.h"

#ifndef GUARDED_BY
#define GUARDED_BY(x) ABSL_GUARDED_BY(x)
#endif
#ifndef REQUIRES
#define REQUIRES(...) ABSL_EXCLUSIVE_LOCKS_REQUIRED(__VA_ARGS__)
#endif
#ifndef EXCLUDES
#define EXCLUDES(...) ABSL_LOCKS_EXCLUDED(__VA_ARGS__)
#endif
