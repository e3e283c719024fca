# The CPU build's dependencies, found the way cluster installs expose them: CMake
# package files or CMake's own Find modules first (module sites set HDF5_ROOT,
# Boost_ROOT, OpenBLAS_DIR, CMAKE_PREFIX_PATH, MPI compiler wrappers), pkg-config only
# where those fail. Each gives one target the libraries link:
#   ringscan::hdf5      parallel HDF5 (C and high-level API), built for the MPI found
#   ringscan::openblas  OpenBLAS with cblas.h
#   ringscan::pcre2     PCRE2's 8-bit library
# plus Boost::program_options and nlohmann_json::nlohmann_json.
# RINGSCAN_DEPENDENCY_SOURCES lists where each came from (printed at the end).

set(RINGSCAN_DEPENDENCY_SOURCES "")
macro(ringscan_found name how)
  list(APPEND RINGSCAN_DEPENDENCY_SOURCES "${name}: ${how}")
endmacro()

# pkg-config, loaded only when a fallback needs it.
macro(ringscan_pkg_config_fallback)
  if(NOT PKG_CONFIG_FOUND)
    find_package(PkgConfig QUIET)
  endif()
endmacro()

# --- Boost.Program_options: BoostConfig.cmake (Boost >= 1.70), never FindBoost --------
find_package(Boost 1.74 CONFIG REQUIRED COMPONENTS program_options)
ringscan_found(Boost "${Boost_VERSION} from ${Boost_DIR}")

# --- nlohmann-json: its CMake package ------------------------------------------------
find_package(nlohmann_json 3 CONFIG REQUIRED)
ringscan_found(nlohmann_json "${nlohmann_json_VERSION} from ${nlohmann_json_DIR}")

# --- OpenBLAS ----------------------------------------------------------------------
# OpenBLASConfig.cmake (OpenBLAS_DIR; newer releases define OpenBLAS::OpenBLAS, older
# ones only OpenBLAS_INCLUDE_DIRS/OpenBLAS_LIBRARIES), then a search under the usual
# prefixes (OpenBLAS_ROOT, CMAKE_PREFIX_PATH), then pkg-config's openblas.
add_library(ringscan::openblas INTERFACE IMPORTED)
find_package(OpenBLAS CONFIG QUIET)
set(ringscan_openblas_inc "")
set(ringscan_openblas_lib "")
if(OpenBLAS_FOUND AND TARGET OpenBLAS::OpenBLAS)
  target_link_libraries(ringscan::openblas INTERFACE OpenBLAS::OpenBLAS)
  ringscan_found(OpenBLAS "${OpenBLAS_VERSION} from ${OpenBLAS_DIR} (OpenBLAS::OpenBLAS)")
  set(ringscan_openblas_done ON)
elseif(OpenBLAS_FOUND AND EXISTS "${OpenBLAS_LIBRARIES}")
  set(ringscan_openblas_inc ${OpenBLAS_INCLUDE_DIRS})
  set(ringscan_openblas_lib ${OpenBLAS_LIBRARIES})
  set(ringscan_openblas_how "${OpenBLAS_VERSION} from ${OpenBLAS_DIR}")
else()
  find_path(RINGSCAN_OPENBLAS_INCLUDE_DIR cblas.h PATH_SUFFIXES openblas openblas-openmp openblas-pthread)
  find_library(RINGSCAN_OPENBLAS_LIBRARY openblas PATH_SUFFIXES openblas-openmp openblas-pthread)
  if(RINGSCAN_OPENBLAS_INCLUDE_DIR AND RINGSCAN_OPENBLAS_LIBRARY)
    set(ringscan_openblas_inc ${RINGSCAN_OPENBLAS_INCLUDE_DIR})
    set(ringscan_openblas_lib ${RINGSCAN_OPENBLAS_LIBRARY})
    set(ringscan_openblas_how "${RINGSCAN_OPENBLAS_LIBRARY} (library search)")
  endif()
endif()
if(NOT ringscan_openblas_done)
  if(NOT ringscan_openblas_lib)
    ringscan_pkg_config_fallback()
    if(PKG_CONFIG_FOUND)
      pkg_check_modules(RINGSCAN_PC_OPENBLAS QUIET IMPORTED_TARGET openblas)
    endif()
    if(NOT RINGSCAN_PC_OPENBLAS_FOUND)
      message(FATAL_ERROR "OpenBLAS was not found (no OpenBLASConfig.cmake, no libopenblas with cblas.h, no openblas.pc): "
                          "set OpenBLAS_DIR, OpenBLAS_ROOT or CMAKE_PREFIX_PATH to its install")
    endif()
    target_link_libraries(ringscan::openblas INTERFACE PkgConfig::RINGSCAN_PC_OPENBLAS)
    ringscan_found(OpenBLAS "${RINGSCAN_PC_OPENBLAS_VERSION} from pkg-config (fallback)")
  else()
    target_include_directories(ringscan::openblas INTERFACE ${ringscan_openblas_inc})
    target_link_libraries(ringscan::openblas INTERFACE ${ringscan_openblas_lib})
    ringscan_found(OpenBLAS "${ringscan_openblas_how}")
  endif()
endif()

# --- PCRE2 (8-bit) --------------------------------------------------------------------
# PCRE2's own package file (CMake-built PCRE2 >= 10.38: PCRE2::8BIT), then a search for
# pcre2.h and libpcre2-8 (PCRE2_ROOT, CMAKE_PREFIX_PATH), then pkg-config's libpcre2-8.
add_library(ringscan::pcre2 INTERFACE IMPORTED)
find_package(PCRE2 CONFIG QUIET COMPONENTS 8BIT)
if(PCRE2_FOUND AND TARGET PCRE2::8BIT)
  target_link_libraries(ringscan::pcre2 INTERFACE PCRE2::8BIT)
  ringscan_found(PCRE2 "${PCRE2_VERSION} from ${PCRE2_DIR}")
else()
  find_path(RINGSCAN_PCRE2_INCLUDE_DIR pcre2.h)
  find_library(RINGSCAN_PCRE2_LIBRARY pcre2-8)
  if(RINGSCAN_PCRE2_INCLUDE_DIR AND RINGSCAN_PCRE2_LIBRARY)
    target_include_directories(ringscan::pcre2 INTERFACE ${RINGSCAN_PCRE2_INCLUDE_DIR})
    target_link_libraries(ringscan::pcre2 INTERFACE ${RINGSCAN_PCRE2_LIBRARY})
    ringscan_found(PCRE2 "${RINGSCAN_PCRE2_LIBRARY} (library search)")
  else()
    ringscan_pkg_config_fallback()
    if(PKG_CONFIG_FOUND)
      pkg_check_modules(RINGSCAN_PC_PCRE2 QUIET IMPORTED_TARGET libpcre2-8)
    endif()
    if(NOT RINGSCAN_PC_PCRE2_FOUND)
      message(FATAL_ERROR "PCRE2 was not found (no pcre2-config.cmake, no pcre2.h with libpcre2-8, no libpcre2-8.pc): "
                          "set PCRE2_ROOT or CMAKE_PREFIX_PATH to its install")
    endif()
    target_link_libraries(ringscan::pcre2 INTERFACE PkgConfig::RINGSCAN_PC_PCRE2)
    ringscan_found(PCRE2 "${RINGSCAN_PC_PCRE2_VERSION} from pkg-config (fallback)")
  endif()
endif()

# --- parallel HDF5 ------------------------------------------------------------------
# CMake's FindHDF5: HDF5's own package file, else the parallel compiler wrapper h5pcc
# first (HDF5_PREFER_PARALLEL), else a search (HDF5_ROOT). A serial HDF5 cannot write
# one file from many ranks: refuse it instead of failing later at link or run time.
# Debian names the wrappers per MPI (h5pcc.openmpi, h5pcc.mpich); h5pcc is whichever
# the alternatives chose, so a build for another MPI names its wrapper:
# -DHDF5_C_COMPILER_EXECUTABLE=/usr/bin/h5pcc.mpich (scripts/test-mpich.sh does).
set(HDF5_PREFER_PARALLEL TRUE)
find_package(HDF5 COMPONENTS C HL)
add_library(ringscan::hdf5 INTERFACE IMPORTED)
if(HDF5_FOUND)
  if(NOT HDF5_IS_PARALLEL)
    list(GET HDF5_C_LIBRARIES 0 ringscan_hdf5_lib)
    message(FATAL_ERROR "The HDF5 found (${HDF5_VERSION}, ${ringscan_hdf5_lib}) is serial, but ringscan writes one file "
                        "from all ranks and needs a parallel HDF5 built for this MPI: load the site's parallel HDF5 "
                        "module or set HDF5_ROOT or HDF5_C_COMPILER_EXECUTABLE (h5pcc) to one.")
  endif()
  list(GET HDF5_C_LIBRARIES 0 ringscan_hdf5_lib)
  set(ringscan_hdf5_libs ${HDF5_HL_LIBRARIES} ${HDF5_C_LIBRARIES})
  if(ringscan_hdf5_lib MATCHES "\\.so(\\.[0-9.]+)?$|\\.dylib$")
    # A shared libhdf5 loads what it needs itself (libcurl, libcrypto, libsz, libz):
    # linking only HDF5's own libraries spares those libraries' development files
    # (libcurl.so, ...), which runtime-only installs (.gpu-deps, slim modules) lack.
    list(FILTER ringscan_hdf5_libs INCLUDE REGEX "(^|/)(lib)?hdf5[^/]*$")
  endif()
  target_include_directories(ringscan::hdf5 INTERFACE ${HDF5_INCLUDE_DIRS})
  target_compile_definitions(ringscan::hdf5 INTERFACE ${HDF5_DEFINITIONS})
  target_link_libraries(ringscan::hdf5 INTERFACE ${ringscan_hdf5_libs} MPI::MPI_C)
  ringscan_found(HDF5 "${HDF5_VERSION}, parallel, ${ringscan_hdf5_lib}")
else()
  ringscan_pkg_config_fallback()
  if(PKG_CONFIG_FOUND)
    # Debian's name first (hdf5-openmpi / hdf5-mpich per MPI), then the generic ones.
    pkg_search_module(RINGSCAN_PC_HDF5 QUIET IMPORTED_TARGET hdf5-mpi hdf5-openmpi hdf5-mpich hdf5)
  endif()
  if(NOT RINGSCAN_PC_HDF5_FOUND)
    message(FATAL_ERROR "No parallel HDF5 was found (no h5pcc, no HDF5 package file, no hdf5 .pc file): load the "
                        "site's parallel HDF5 module or set HDF5_ROOT or HDF5_C_COMPILER_EXECUTABLE (h5pcc) to one.")
  endif()
  # A .pc file does not say whether the build is parallel; H5pubconf.h does.
  find_file(RINGSCAN_PC_HDF5_PUBCONF H5pubconf.h HINTS ${RINGSCAN_PC_HDF5_INCLUDE_DIRS} NO_DEFAULT_PATH)
  set(ringscan_hdf5_parallel "")
  if(RINGSCAN_PC_HDF5_PUBCONF)
    file(STRINGS ${RINGSCAN_PC_HDF5_PUBCONF} ringscan_hdf5_parallel REGEX "^#define H5_HAVE_PARALLEL 1")
  endif()
  if(NOT ringscan_hdf5_parallel)
    message(FATAL_ERROR "The HDF5 found by pkg-config (${RINGSCAN_PC_HDF5_MODULE_NAME} ${RINGSCAN_PC_HDF5_VERSION}) is "
                        "serial, but ringscan writes one file from all ranks and needs a parallel HDF5 built for this "
                        "MPI: load the site's parallel HDF5 module or set HDF5_ROOT or HDF5_C_COMPILER_EXECUTABLE to one.")
  endif()
  target_link_libraries(ringscan::hdf5 INTERFACE PkgConfig::RINGSCAN_PC_HDF5 MPI::MPI_C)
  ringscan_found(HDF5 "${RINGSCAN_PC_HDF5_VERSION} from pkg-config ${RINGSCAN_PC_HDF5_MODULE_NAME} (fallback)")
endif()
