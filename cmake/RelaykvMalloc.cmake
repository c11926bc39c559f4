# The allocator of relaykv's own executables (relaykvd, relaykv,
# relaykv-bench): gperftools' tcmalloc (minimal: no heap profiler) when
# Debian's libgoogle-perftools-dev is installed, else glibc's malloc. The
# commit path allocates and frees small protobuf messages, strings and
# closures on one thread that another allocated (gRPC's, the committer, the
# ACK thread): with glibc that was ~10% of the primary's CPU under 64
# clients; tcmalloc's per-thread caches take most of it (README
# "Performance"). Only executables: an application embedding relaykv::Node
# keeps the allocator it chose. RELAYKV_TCMALLOC=OFF builds with glibc.
option(RELAYKV_TCMALLOC "Link relaykvd, relaykv and relaykv-bench with tcmalloc when found" ON)
set(RELAYKV_TCMALLOC_FOUND FALSE)
if(RELAYKV_TCMALLOC)
  find_package(PkgConfig REQUIRED)
  pkg_check_modules(TCMALLOC IMPORTED_TARGET libtcmalloc_minimal)
  if(TCMALLOC_FOUND)
    set(RELAYKV_TCMALLOC_FOUND TRUE)
  else()
    message(STATUS "relaykv: libtcmalloc_minimal not found (libgoogle-perftools-dev): "
                   "the executables use glibc's malloc")
  endif()
endif()

# Links `target` (an executable) with the allocator above, if any. The
# executable links with --no-as-needed (set before every library on its link
# line) so that the library stays NEEDED although no symbol of it is
# referenced by name: malloc is replaced by interposition. (Bracketing only
# this library does not work: CMake moves an imported target away from the
# flags around it, and gRPC's own --push-state/--pop-state pairs get
# interleaved with ours.) The cost: every library on the line is NEEDED,
# all of which the process loads anyway through gRPC and RocksDB.
# tests/CMakeLists.txt checks that the executables keep it.
function(relaykv_use_allocator target)
  if(RELAYKV_TCMALLOC_FOUND)
    target_compile_options(${target} PRIVATE -fno-builtin-malloc -fno-builtin-calloc
                           -fno-builtin-realloc -fno-builtin-free)
    target_link_options(${target} PRIVATE "LINKER:--no-as-needed")
    target_link_libraries(${target} PRIVATE PkgConfig::TCMALLOC)
  endif()
endfunction()
