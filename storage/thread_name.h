// Names the calling thread (as `top -H`, perf and gdb show it); at most 15
// characters survive.
#pragma once

#include <pthread.h>

namespace relaykv {

inline void NameThisThread(const char* name) { pthread_setname_np(pthread_self(), name); }

}  // namespace relaykv
