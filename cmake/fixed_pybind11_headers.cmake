# pybind11's headers at a path that stays the same from one build to the next.
#
# pip builds in a new isolated environment each time, with pybind11 in a new temporary directory;
# compiled against that path, every binding's command line would differ and ninja would rebuild
# them all. The headers are copied into the build directory (configure_file leaves a copy alone
# when its content is the same, so its timestamp stays too) and pybind11's header targets point
# there instead.
set(_fastnn_pybind11_from "${pybind11_INCLUDE_DIR}")
set(_fastnn_pybind11_to "${CMAKE_BINARY_DIR}/pybind11-include")
file(GLOB_RECURSE _fastnn_pybind11_headers RELATIVE "${_fastnn_pybind11_from}"
     "${_fastnn_pybind11_from}/pybind11/*")
foreach(_header IN LISTS _fastnn_pybind11_headers)
  configure_file("${_fastnn_pybind11_from}/${_header}" "${_fastnn_pybind11_to}/${_header}" COPYONLY)
endforeach()
# pybind11::headers is an alias of pybind11::pybind11_headers in pybind11 3, a target of its own
# in older versions: change whichever is real.
foreach(_target IN ITEMS pybind11::pybind11_headers pybind11::headers)
  if(TARGET ${_target})
    get_target_property(_aliased ${_target} ALIASED_TARGET)
    get_target_property(_dirs ${_target} INTERFACE_INCLUDE_DIRECTORIES)
    if(NOT _aliased AND _dirs)
      string(REPLACE "${_fastnn_pybind11_from}" "${_fastnn_pybind11_to}" _dirs "${_dirs}")
      set_property(TARGET ${_target} PROPERTY INTERFACE_INCLUDE_DIRECTORIES "${_dirs}")
    endif()
  endif()
endforeach()
