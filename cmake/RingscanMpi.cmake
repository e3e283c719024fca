# MPI, and how the tests launch ranks with it. Open MPI and MPICH (and MPICH's
# derivatives: Intel MPI, MVAPICH, Cray MPICH) differ in the launcher's flags and in
# what they need as root, so the tests never spell those out: they run
# ${RINGSCAN_TEST_MPIEXEC} -np N PROGRAM ARGS...
# a script written here that sets what this implementation needs and execs mpiexec.
#   RINGSCAN_MPI_FLAVOR      "Open MPI", "MPICH" or "unknown" (from the MPI library itself)
#   RINGSCAN_MPI_TEST_ENV    VAR=VALUE list for tests that start MPI without mpiexec
#                            (singletons); also exported by the script
#   RINGSCAN_TEST_MPIEXEC    the script (in the build folder)
#
# Another MPI than the default: -DMPI_C_COMPILER=mpicc.mpich -DMPI_CXX_COMPILER=mpicxx.mpich
# -DMPIEXEC_EXECUTABLE=/usr/bin/mpiexec.mpich (scripts/test-mpich.sh).

set(MPI_DETERMINE_LIBRARY_VERSION TRUE)  # MPI_C_LIBRARY_VERSION_STRING: which MPI the library is
find_package(MPI REQUIRED COMPONENTS C CXX)

function(ringscan_mpi_flavor_of text out)
  if(text MATCHES "Open MPI|OpenRTE")
    set(${out} "Open MPI" PARENT_SCOPE)
  elseif(text MATCHES "MPICH|HYDRA|Intel\\(R\\) MPI|MVAPICH")
    set(${out} "MPICH" PARENT_SCOPE)
  else()
    set(${out} "unknown" PARENT_SCOPE)
  endif()
endfunction()

ringscan_mpi_flavor_of("${MPI_C_LIBRARY_VERSION_STRING}" RINGSCAN_MPI_FLAVOR)
execute_process(COMMAND ${MPIEXEC_EXECUTABLE} --version OUTPUT_VARIABLE ringscan_mpiexec_version
  ERROR_VARIABLE ringscan_mpiexec_version RESULT_VARIABLE ringscan_mpiexec_rc TIMEOUT 30)
ringscan_mpi_flavor_of("${ringscan_mpiexec_version}" ringscan_mpiexec_flavor)
# mpiexec from one MPI starting programs linked with another gives N singletons or a
# hang, never an error naming the cause: refuse the pair at configure time.
if(NOT RINGSCAN_MPI_FLAVOR STREQUAL "unknown" AND NOT ringscan_mpiexec_flavor STREQUAL "unknown"
   AND NOT RINGSCAN_MPI_FLAVOR STREQUAL ringscan_mpiexec_flavor)
  message(FATAL_ERROR "MPIEXEC_EXECUTABLE (${MPIEXEC_EXECUTABLE}) is ${ringscan_mpiexec_flavor}'s launcher but the MPI "
                      "library found (MPI_C_COMPILER ${MPI_C_COMPILER}) is ${RINGSCAN_MPI_FLAVOR}: set "
                      "MPIEXEC_EXECUTABLE to the mpiexec of the same MPI.")
endif()

if(RINGSCAN_MPI_FLAVOR STREQUAL "Open MPI")
  # Tests start up to 8 ranks on 2 cores (--oversubscribe), leave their placement to the
  # OS (--bind-to none: bound ranks on too few cores run one after another), and CI runs
  # as root, which Open MPI refuses unless told (OMPI_ALLOW_RUN_AS_ROOT*, Open MPI only).
  set(RINGSCAN_MPIEXEC_TEST_FLAGS --oversubscribe --bind-to none)
  set(RINGSCAN_MPI_TEST_ENV OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1)
elseif(RINGSCAN_MPI_FLAVOR STREQUAL "MPICH")
  # Hydra runs as root, oversubscribes and does not bind by default. -launcher fork keeps
  # the ranks on this machine without ssh, even when ctest runs inside a Slurm job
  # (where Hydra would otherwise launch through srun).
  set(RINGSCAN_MPIEXEC_TEST_FLAGS -launcher fork)
  set(RINGSCAN_MPI_TEST_ENV "")
else()
  message(STATUS "ringscan: MPI library not recognised as Open MPI or MPICH; the tests run `${MPIEXEC_EXECUTABLE} -np N` "
                 "without flags (${MPI_C_LIBRARY_VERSION_STRING})")
  set(RINGSCAN_MPIEXEC_TEST_FLAGS "")
  set(RINGSCAN_MPI_TEST_ENV "")
endif()
list(JOIN RINGSCAN_MPIEXEC_TEST_FLAGS " " ringscan_mpiexec_flags)
# The first line, up to a comma: "Open MPI v4.1.4", "MPICH Version: 4.0.2".
string(REGEX REPLACE "[\r\n].*" "" ringscan_mpi_version_line "${MPI_C_LIBRARY_VERSION_STRING}")
string(REGEX REPLACE ",.*" "" ringscan_mpi_version_line "${ringscan_mpi_version_line}")
string(REGEX REPLACE "[\t ]+" " " ringscan_mpi_version_line "${ringscan_mpi_version_line}")
message(STATUS "ringscan: MPI is ${RINGSCAN_MPI_FLAVOR} (${ringscan_mpi_version_line}); tests launch "
               "${MPIEXEC_EXECUTABLE} ${ringscan_mpiexec_flags}")

set(RINGSCAN_TEST_MPIEXEC ${CMAKE_BINARY_DIR}/mpiexec-tests)
set(ringscan_mpi_exports "")
foreach(kv IN LISTS RINGSCAN_MPI_TEST_ENV)
  string(APPEND ringscan_mpi_exports "export ${kv}\n")
endforeach()
file(CONFIGURE OUTPUT ${RINGSCAN_TEST_MPIEXEC} @ONLY CONTENT [[#!/bin/sh
# Written by CMake (cmake/RingscanMpi.cmake): how this build's tests start ranks with
# @RINGSCAN_MPI_FLAVOR@. Usage: mpiexec-tests -np N PROGRAM [ARGS...]
@ringscan_mpi_exports@exec "@MPIEXEC_EXECUTABLE@" @ringscan_mpiexec_flags@ "$@"
]])
file(CHMOD ${RINGSCAN_TEST_MPIEXEC} PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE
  WORLD_READ WORLD_EXECUTE)
