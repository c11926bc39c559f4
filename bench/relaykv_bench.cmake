# relaykv-bench: the commit-latency benchmark (issue: bench). Included from
# bench/CMakeLists.txt.
relaykv_grpc_proto_library(relaykv_bench_echo_proto ${CMAKE_BINARY_DIR}/bench echo.proto)

add_executable(relaykv-bench catchup.cc cluster.cc floor.cc load.cc report.cc relaykv_bench_main.cc
  scan.cc watchers.cc)
target_include_directories(relaykv-bench PRIVATE ${CMAKE_SOURCE_DIR} ${CMAKE_BINARY_DIR})
target_link_libraries(relaykv-bench PRIVATE relaykv_client relaykv_server relaykv_tls relaykv_storage relaykv_service_proto relaykv_bench_echo_proto spdlog::spdlog
  absl::status absl::statusor absl::synchronization CLI11::CLI11 Threads::Threads)
relaykv_use_allocator(relaykv-bench)
