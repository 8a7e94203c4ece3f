# Uses ccache when present. Precompiled headers need the pch_defines and time_macros sloppiness; a base
# dir makes paths relative so that a fresh clone elsewhere (CI) still hits the cache.
if(LLAVACOT_USE_CCACHE AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
  find_program(LLAVACOT_CCACHE_PROGRAM ccache)
  if(LLAVACOT_CCACHE_PROGRAM)
    set(CMAKE_CXX_COMPILER_LAUNCHER
        "${CMAKE_COMMAND};-E;env;CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime;CCACHE_BASEDIR=${CMAKE_SOURCE_DIR};${LLAVACOT_CCACHE_PROGRAM}")
    message(STATUS "llavacot: using ccache (${LLAVACOT_CCACHE_PROGRAM})")
  endif()
endif()
