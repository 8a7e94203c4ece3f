# Project warning flags, applied to our own targets only (LibTorch headers are included as system headers).
function(llavacot_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wno-unused-parameter)
  if(LLAVACOT_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
