# relaykv-bench: the commit-latency benchmark (issue: bench). Included from
# bench/CMakeLists.txt.
add_library(relaykv_bench_echo_proto STATIC echo.proto)
protobuf_generate(TARGET relaykv_bench_echo_proto LANGUAGE cpp
  PROTOC_OUT_DIR ${CMAKE_BINARY_DIR}/bench)
protobuf_generate(TARGET relaykv_bench_echo_proto LANGUAGE grpc
  GENERATE_EXTENSIONS .grpc.pb.h .grpc.pb.cc
  PLUGIN "protoc-gen-grpc=$<TARGET_FILE:gRPC::grpc_cpp_plugin>"
  PROTOC_OUT_DIR ${CMAKE_BINARY_DIR}/bench)
target_compile_options(relaykv_bench_echo_proto PRIVATE -w)
target_link_libraries(relaykv_bench_echo_proto PUBLIC gRPC::grpc++)

add_executable(relaykv-bench catchup.cc cluster.cc floor.cc load.cc report.cc relaykv_bench_main.cc)
target_include_directories(relaykv-bench PRIVATE ${CMAKE_SOURCE_DIR} ${CMAKE_BINARY_DIR})
target_link_libraries(relaykv-bench PRIVATE relaykv_storage relaykv_service_proto relaykv_bench_echo_proto
  absl::status absl::statusor CLI11::CLI11 Threads::Threads)
