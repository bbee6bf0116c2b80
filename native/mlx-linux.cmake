# CMake toolchain file for mlx-sys' bundled mlx-c on Linux (ours; see native/README.md).
# Given to the `cmake` crate through CMAKE_TOOLCHAIN_FILE_x86_64_unknown_linux_gnu
# (.cargo/config.toml). It points mlx-c at the prebuilt CPU libmlx from the PyPI
# `mlx-cpu` wheel (unpacked into .mlx/ by scripts/fetch-mlx.sh) instead of letting
# it FetchContent MLX from GitHub, which these machines cannot reach.
if(NOT DEFINED ENV{MLX_PREFIX})
  message(FATAL_ERROR "MLX_PREFIX is not set: run scripts/fetch-mlx.sh and build through cargo (.cargo/config.toml sets it)")
endif()
set(MLX_C_USE_SYSTEM_MLX ON CACHE BOOL "use find_package(MLX)" FORCE)
set(MLX_C_BUILD_EXAMPLES OFF CACHE BOOL "" FORCE)
set(MLX_DIR "$ENV{MLX_PREFIX}/share/cmake/MLX" CACHE PATH "" FORCE)
# Included right after mlx-c's project(): force-includes our compat header. The cmake
# crate overwrites CMAKE_CXX_FLAGS, so compile options must be added from inside.
set(CMAKE_PROJECT_INCLUDE "${CMAKE_CURRENT_LIST_DIR}/mlx-c-project.cmake" CACHE FILEPATH "" FORCE)
