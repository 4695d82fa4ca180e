# Install rules for a system installation and the Debian package built from them:
#   cmake --build build && (cd build && cpack -G DEB)   ->   build/popbridge_<version>-1_amd64.deb
# The layout is Debian's, and the systemd unit (config/systemd/popbridge.service) names these
# paths, so the package always installs under /usr whatever CMAKE_INSTALL_PREFIX says:
#   /usr/bin/popbridge                     (proxy/CMakeLists.txt; RUNPATH to BoringSSL's
#                                           android directory, which android-libboringssl owns)
#   /lib/systemd/system/popbridge.service  where Debian 12's systemd reads package units
#   /usr/lib/sysusers.d/popbridge.conf     the service's system user
#   /etc/popbridge/popbridge.toml          a conffile; listens on loopback only until edited
#   /etc/popbridge/tls/                    for the listeners' certificate and key
#   /usr/share/doc/popbridge/              README.md, config/README.md, the annotated example,
#                                          copyright
# tests/package/package_test.sh builds the package, installs it into a throwaway root and checks
# all of this.
include_guard(GLOBAL)

set(POPBRIDGE_PACKAGE_DIR ${CMAKE_CURRENT_LIST_DIR})
set(POPBRIDGE_SYSTEMD_DIR ${PROJECT_SOURCE_DIR}/config/systemd)

# `cmake --install` without --prefix installs where the unit expects the binary.
if(CMAKE_INSTALL_PREFIX_INITIALIZED_TO_DEFAULT)
  set(CMAKE_INSTALL_PREFIX /usr CACHE PATH "Install prefix (the unit runs /usr/bin/popbridge)" FORCE)
endif()

install(FILES ${POPBRIDGE_SYSTEMD_DIR}/popbridge.service DESTINATION /lib/systemd/system)
install(FILES ${POPBRIDGE_SYSTEMD_DIR}/popbridge.sysusers DESTINATION lib/sysusers.d
  RENAME popbridge.conf)
install(FILES ${POPBRIDGE_PACKAGE_DIR}/popbridge.toml DESTINATION /etc/popbridge)
install(DIRECTORY DESTINATION /etc/popbridge/tls)
install(FILES ${PROJECT_SOURCE_DIR}/README.md ${POPBRIDGE_PACKAGE_DIR}/copyright
  DESTINATION share/doc/popbridge)
# The same relative place as in the repository, so README.md's links keep working.
install(FILES ${PROJECT_SOURCE_DIR}/config/README.md ${PROJECT_SOURCE_DIR}/config/popbridge.example.toml
  DESTINATION share/doc/popbridge/config)

set(CPACK_PACKAGE_NAME popbridge)
set(CPACK_PACKAGE_VENDOR "popbridge maintainers")
set(CPACK_PACKAGE_CONTACT "popbridge maintainers <maintainers@users.noreply.h-seed-48621045.example>")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "POP3 server for mailboxes on an IMAP server")
set(CPACK_PACKAGE_DESCRIPTION
  "popbridge lets devices and programs that only speak POP3 (scanners, printers, ticketing
systems, old mail clients) keep fetching mail after it moves to an IMAP server such as Gmail,
Microsoft 365 or Dovecot. Each POP3 session becomes IMAP commands; messages are streamed, DELE
applies only at QUIT with a configurable policy, and upstream logins may use OAuth2.")
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
# The DEB generator stages the absolute /etc and /lib destinations above inside the package
# (CPACK_SET_DESTDIR would make it install under CMAKE_INSTALL_PREFIX instead of /usr).
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_SECTION mail)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# dpkg-shlibdeps follows the binary's RUNPATH into the android directory and maps every library
# to its package (android-libboringssl, libuv1, libtomlplusplus3, libspdlog1.10, libfmt9,
# libargon2-1, libstdc++6, libc6); the list below adds what no ELF reference shows.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "systemd-sysusers | adduser")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "ca-certificates")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/package/conffiles "/etc/popbridge/popbridge.toml\n")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  ${CMAKE_CURRENT_BINARY_DIR}/package/conffiles
  ${POPBRIDGE_PACKAGE_DIR}/postinst
  ${POPBRIDGE_PACKAGE_DIR}/prerm
  ${POPBRIDGE_PACKAGE_DIR}/postrm)
include(CPack)
