# Runs inside mlx-c's project() (CMAKE_PROJECT_INCLUDE): every translation unit sees our compat header.
add_compile_options("SHELL:-include ${CMAKE_CURRENT_LIST_DIR}/include/mlx_linux_compat.h")
