# stage.sh: sourced by hack/ scripts and .ci/run. `stage NAME` prints a banner and
# ends the previous stage; `stage_end` ends the last one. With SM_TIMINGS set to a
# file, every ended stage appends "<seconds>\t<name>" to it.
_stage_name=""
_stage_start=0
stage_end() {
  if [ -n "$_stage_name" ]; then
    local took=$(( $(date +%s) - _stage_start ))
    echo ">> $_stage_name: ${took}s"
    if [ -n "${SM_TIMINGS:-}" ]; then printf '%s\t%s\n' "$took" "$_stage_name" >>"$SM_TIMINGS"; fi
  fi
  _stage_name=""
}
stage() {
  stage_end
  _stage_name="$*"
  _stage_start=$(date +%s)
  echo; echo "==> $*"
}
