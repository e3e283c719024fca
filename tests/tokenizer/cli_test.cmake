# `ringscan tokenize` end to end against HF's ids (expected.json):
#   cmake -DRINGSCAN=<exe> -DFIXTURES=<dir> -DWORK=<dir> -P cli_test.cmake
file(READ "${FIXTURES}/expected.json" expected)
string(JSON n_cases LENGTH "${expected}" cases)
math(EXPR last "${n_cases} - 1")
set(case "")
foreach(i RANGE ${last})
  string(JSON file GET "${expected}" cases ${i} file)
  if(file STREQUAL "corpus/special_tokens.txt")
    string(JSON case GET "${expected}" cases ${i})
  endif()
endforeach()
if(case STREQUAL "")
  message(FATAL_ERROR "expected.json has no case for corpus/special_tokens.txt")
endif()

function(json_ids_to_text json_array out)
  string(JSON n LENGTH "${json_array}")
  math(EXPR last "${n} - 1")
  set(words "")
  foreach(k RANGE ${last})
    string(JSON id GET "${json_array}" ${k})
    list(APPEND words "${id}")
  endforeach()
  string(REPLACE ";" " " text "${words}")
  set(${out} "${text}\n" PARENT_SCOPE)
endfunction()

string(JSON ids GET "${case}" ids)
string(JSON ids_special GET "${case}" ids_special)
json_ids_to_text("${ids}" want_plain)
json_ids_to_text("${ids_special}" want_special)

# Encode, without and with --add-special.
execute_process(COMMAND "${RINGSCAN}" tokenize --tokenizer "${FIXTURES}/demo" --input "${FIXTURES}/corpus/special_tokens.txt"
                RESULT_VARIABLE rc OUTPUT_VARIABLE got ERROR_VARIABLE err)
if(NOT rc EQUAL 0 OR NOT got STREQUAL want_plain)
  message(FATAL_ERROR "tokenize: rc=${rc} ${err}\ngot:  ${got}\nwant: ${want_plain}")
endif()
execute_process(COMMAND "${RINGSCAN}" tokenize --model "${FIXTURES}/demo" --input "${FIXTURES}/corpus/special_tokens.txt" --add-special
                RESULT_VARIABLE rc OUTPUT_VARIABLE got ERROR_VARIABLE err)
if(NOT rc EQUAL 0 OR NOT got STREQUAL want_special)
  message(FATAL_ERROR "tokenize --add-special: rc=${rc} ${err}\ngot:  ${got}\nwant: ${want_special}")
endif()

# Decode HF's ids back; compare the bytes with HF's decode through its SHA-256.
file(MAKE_DIRECTORY "${WORK}")
file(WRITE "${WORK}/ids.txt" "${want_plain}")
execute_process(COMMAND "${RINGSCAN}" tokenize --tokenizer "${FIXTURES}/demo/tokenizer.json" --input "${WORK}/ids.txt" --decode
                RESULT_VARIABLE rc OUTPUT_FILE "${WORK}/decoded.txt" ERROR_VARIABLE err)
file(SHA256 "${WORK}/decoded.txt" got_sha)
string(JSON want_sha GET "${case}" decode_sha256)
if(NOT rc EQUAL 0 OR NOT got_sha STREQUAL want_sha)
  message(FATAL_ERROR "tokenize --decode: rc=${rc} ${err} sha256 ${got_sha}, HF ${want_sha}")
endif()

# Bad input fails with a clear message and a non-zero status.
file(WRITE "${WORK}/bad_ids.txt" "1 2 x3 4")
execute_process(COMMAND "${RINGSCAN}" tokenize --tokenizer "${FIXTURES}/demo" --input "${WORK}/bad_ids.txt" --decode
                RESULT_VARIABLE rc OUTPUT_VARIABLE got ERROR_VARIABLE err)
if(rc EQUAL 0 OR NOT err MATCHES "expected whitespace-separated non-negative integer ids, found \"x3\"")
  message(FATAL_ERROR "bad ids: rc=${rc} stderr: ${err}")
endif()
execute_process(COMMAND "${RINGSCAN}" tokenize --tokenizer "${WORK}/missing" --input "${WORK}/ids.txt"
                RESULT_VARIABLE rc OUTPUT_VARIABLE got ERROR_VARIABLE err)
if(rc EQUAL 0 OR NOT err MATCHES "no such file or directory")
  message(FATAL_ERROR "missing tokenizer: rc=${rc} stderr: ${err}")
endif()
message(STATUS "ringscan tokenize matches HF")
