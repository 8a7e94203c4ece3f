# Locates LibTorch inside the `torch` Python wheel when CMAKE_PREFIX_PATH does not already point at one.
# The wheel carries the C++ headers, the shared libraries and TorchConfig.cmake under site-packages/torch.
if(NOT Torch_DIR AND NOT DEFINED ENV{Torch_DIR})
  find_package(Python3 COMPONENTS Interpreter QUIET)
  if(Python3_Interpreter_FOUND)
    execute_process(
      COMMAND "${Python3_EXECUTABLE}" -c "import torch; print(torch.utils.cmake_prefix_path)"
      OUTPUT_VARIABLE _llavacot_torch_prefix
      OUTPUT_STRIP_TRAILING_WHITESPACE
      ERROR_QUIET
      RESULT_VARIABLE _llavacot_torch_rc)
    if(_llavacot_torch_rc EQUAL 0 AND _llavacot_torch_prefix)
      list(APPEND CMAKE_PREFIX_PATH "${_llavacot_torch_prefix}")
    endif()
  endif()
endif()

# The CUDA build's config looks for the CUDA toolkit; point it at the usual install when nvcc is not on PATH.
if(NOT CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX} AND EXISTS "/usr/local/cuda/bin/nvcc")
  set(CMAKE_CUDA_COMPILER "/usr/local/cuda/bin/nvcc" CACHE FILEPATH "nvcc")
endif()

find_package(Torch QUIET)
if(NOT Torch_FOUND)
  message(FATAL_ERROR
    "LibTorch not found. Install the pinned wheel with `python3 -m pip install -r requirements.txt` "
    "(scripts/bootstrap.sh does this), or pass -DCMAKE_PREFIX_PATH=<libtorch or "
    "python3 -c 'import torch; print(torch.utils.cmake_prefix_path)'>.")
endif()
message(STATUS "llavacot: LibTorch ${Torch_VERSION} from ${Torch_DIR}")

# A wheel's libtorch_cuda needs the CUDA, cuDNN and NCCL libraries that pip installed beside it
# (site-packages/nvidia/*/lib), which can be newer than the system CUDA toolkit's. Search those first,
# both when linking (-rpath-link) and at run time (rpath ahead of the toolkit's lib folder).
get_filename_component(_llavacot_site "${TORCH_INSTALL_PREFIX}/.." ABSOLUTE)
file(GLOB _llavacot_wheel_lib_dirs LIST_DIRECTORIES true "${_llavacot_site}/nvidia/*/lib")
set(LLAVACOT_TORCH_RUNTIME_DIRS "${TORCH_INSTALL_PREFIX}/lib")
foreach(_dir IN LISTS _llavacot_wheel_lib_dirs)
  if(IS_DIRECTORY "${_dir}")
    list(APPEND LLAVACOT_TORCH_RUNTIME_DIRS "${_dir}")
  endif()
endforeach()
foreach(_dir IN LISTS LLAVACOT_TORCH_RUNTIME_DIRS)
  add_link_options("LINKER:-rpath-link,${_dir}" "LINKER:-rpath,${_dir}")
endforeach()
