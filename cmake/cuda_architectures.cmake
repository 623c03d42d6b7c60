# Which GPUs fastnn._cuda carries code for: FASTNN_CUDA_ARCHS (environment, at install; see the
# README's "Build options" for users' words). Included after enable_language(CUDA).
#
#   unset, "" or "auto"  "native" when the build machine has a GPU, else "default"
#   "native"             SASS for each GPU of the build machine, no PTX (an error without a GPU)
#   "default"            FASTNN_CUDA_DEFAULT_ARCHS below
#   a list               CMake's CUDA_ARCHITECTURES syntax, ';' or ',' between entries:
#                        "86" = sm_86 SASS + compute_86 PTX, "86-real" = SASS only,
#                        "86-virtual" = PTX only
#
# The default: SASS for each compute capability 8.x and 9.0 that the data-centre and desktop
# GPUs have (A100 8.0, A10/RTX 30xx 8.6, L4/RTX 40xx 8.9, H100/H200 9.0), and the newest one's
# PTX, which the driver compiles for anything newer (Blackwell 10.x/12.x) on first load and keeps
# in its cache. SASS of 8.0 alone would run on 8.6 and 8.9 too; their own SASS is scheduled for
# their SMs. Nothing below 8.0: the tensor-core kernels use mma.sync shapes that need it.
#
# Sets, for CMakeLists.txt:
#   FASTNN_CUDA_ARCH_LIST    the resolved list, for the target's CUDA_ARCHITECTURES
#   FASTNN_CUDA_ARCH_IMAGES  what the module holds, as fastnn/_cuda_arch.py reads it:
#                            "sm_80,sm_86,sm_89,sm_90,compute_90"
set(FASTNN_CUDA_DEFAULT_ARCHS "80-real;86-real;89-real;90")
set(FASTNN_CUDA_ARCHS "" CACHE STRING
    "CUDA architectures for fastnn._cuda: auto (native with a GPU, else the default list), native, default, or a list such as 80-real;90")

string(STRIP "${FASTNN_CUDA_ARCHS}" _fastnn_archs)
string(REPLACE "," ";" _fastnn_archs "${_fastnn_archs}")

# CMake leaves CMAKE_CUDA_ARCHITECTURES_NATIVE ("90-real", one entry per GPU) from running a
# probe at enable_language(CUDA); without a GPU it holds the probe's message instead, so only
# well-formed entries count. Empty before CMake 3.24.
set(_fastnn_native "")
foreach(_entry IN LISTS CMAKE_CUDA_ARCHITECTURES_NATIVE)
  if(_entry MATCHES "^[0-9]+[a-z]?-real$")
    list(APPEND _fastnn_native "${_entry}")
  endif()
endforeach()

if(_fastnn_archs STREQUAL "" OR _fastnn_archs STREQUAL "auto")
  if(_fastnn_native)
    set(_fastnn_archs "native")
  else()
    set(_fastnn_archs "default")
  endif()
endif()
if(_fastnn_archs STREQUAL "native")
  if(NOT _fastnn_native)
    message(FATAL_ERROR "FASTNN_CUDA_ARCHS=native: no GPU visible to this build (CMake "
                        "${CMAKE_VERSION} found: '${CMAKE_CUDA_ARCHITECTURES_NATIVE}'); "
                        "name the architectures instead, e.g. FASTNN_CUDA_ARCHS=86")
  endif()
  set(FASTNN_CUDA_ARCH_LIST "${_fastnn_native}")
elseif(_fastnn_archs STREQUAL "default")
  set(FASTNN_CUDA_ARCH_LIST "${FASTNN_CUDA_DEFAULT_ARCHS}")
else()
  set(FASTNN_CUDA_ARCH_LIST "${_fastnn_archs}")
endif()

# The images each entry puts in the module: N -> sm_N + compute_N, N-real -> sm_N,
# N-virtual -> compute_N.
set(_fastnn_images "")
foreach(_entry IN LISTS FASTNN_CUDA_ARCH_LIST)
  if(NOT _entry MATCHES "^([0-9]+[a-z]?)(-real|-virtual)?$")
    message(FATAL_ERROR "FASTNN_CUDA_ARCHS: '${_entry}' is not an architecture (expected e.g. "
                        "86, 86-real or 90-virtual; the list was '${FASTNN_CUDA_ARCHS}')")
  endif()
  if(NOT CMAKE_MATCH_2 STREQUAL "-virtual")
    list(APPEND _fastnn_images "sm_${CMAKE_MATCH_1}")
  endif()
  if(NOT CMAKE_MATCH_2 STREQUAL "-real")
    list(APPEND _fastnn_images "compute_${CMAKE_MATCH_1}")
  endif()
endforeach()
list(REMOVE_DUPLICATES _fastnn_images)
string(REPLACE ";" "," FASTNN_CUDA_ARCH_IMAGES "${_fastnn_images}")

# Device-code compression. nvcc 13 chooses how hard: "size" gives the smallest module, and every
# driver that runs CUDA 13 code (580 and later) reads it. Older nvcc: the classic compression of
# every image, which every driver reads.
if(CMAKE_CUDA_COMPILER_VERSION VERSION_GREATER_EQUAL 13.0)
  set(FASTNN_CUDA_COMPRESS_FLAGS "--compress-mode=size")
else()
  set(FASTNN_CUDA_COMPRESS_FLAGS "-Xfatbin=-compress-all")
endif()
