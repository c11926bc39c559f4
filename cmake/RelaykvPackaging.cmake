# `cpack -G DEB` in the build dir makes two packages (README "Debian package"):
#   relaykv      relaykvd, relaykv, relaykv-bench, the systemd unit
#                relaykvd.service (user relaykv, created by postinst),
#                /etc/relaykv/relaykvd.cnf (a conffile, read by default),
#                data in /var/lib/relaykv
#   relaykv-dev  headers, static libraries and the CMake package (Embedding)
# The unit and the config file are only in the package: a plain
# `cmake --install` (into a prefix of your own) leaves /etc and systemd alone.
install(FILES ${CMAKE_SOURCE_DIR}/packaging/relaykvd.service
        DESTINATION lib/systemd/system COMPONENT server EXCLUDE_FROM_ALL)
install(FILES ${CMAKE_SOURCE_DIR}/packaging/relaykvd.cnf
        DESTINATION /etc/relaykv COMPONENT server EXCLUDE_FROM_ALL)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME relaykv)
set(CPACK_PACKAGE_VENDOR relaykv)
set(CPACK_PACKAGE_CONTACT "relaykv maintainers <relaykv@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "key-value server with a binlog and lossless semi-sync replication")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_COMPONENTS_ALL server dev)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_STRIP_FILES ON)   # debug info stays in the build tree
set(CPACK_DEBIAN_PACKAGE_SECTION database)
set(CPACK_DEBIAN_SERVER_PACKAGE_NAME relaykv)
set(CPACK_DEBIAN_SERVER_PACKAGE_SHLIBDEPS ON)   # Depends from the binaries' libraries
set(CPACK_DEBIAN_SERVER_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_SERVER_PACKAGE_CONTROL_EXTRA
    ${CMAKE_SOURCE_DIR}/packaging/debian/postinst
    ${CMAKE_SOURCE_DIR}/packaging/debian/prerm
    ${CMAKE_SOURCE_DIR}/packaging/debian/postrm
    ${CMAKE_SOURCE_DIR}/packaging/debian/conffiles)
set(CPACK_DEBIAN_SERVER_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_DEV_PACKAGE_NAME relaykv-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS
    "libgrpc++-dev, libprotobuf-dev, librocksdb-dev, libspdlog-dev, libssl-dev")
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
include(CPack)
