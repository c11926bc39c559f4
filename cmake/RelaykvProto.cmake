# relaykv_grpc_proto_library(<target> <out-dir> <file.proto>...): a static
# library of protobuf messages plus gRPC services generated into <out-dir>
# (so "<dir name>/x.grpc.pb.h" includes resolve from the build dir).
# Generated code is compiled without warnings: it is not ours.
function(relaykv_grpc_proto_library target out_dir)
  add_library(${target} STATIC ${ARGN})
  protobuf_generate(TARGET ${target} LANGUAGE cpp PROTOC_OUT_DIR ${out_dir})
  protobuf_generate(TARGET ${target} LANGUAGE grpc
    GENERATE_EXTENSIONS .grpc.pb.h .grpc.pb.cc
    PLUGIN "protoc-gen-grpc=$<TARGET_FILE:gRPC::grpc_cpp_plugin>"
    PROTOC_OUT_DIR ${out_dir})
  target_compile_options(${target} PRIVATE -w)
  target_link_libraries(${target} PUBLIC gRPC::grpc++)
endfunction()
