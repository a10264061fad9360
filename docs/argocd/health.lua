-- Argo CD health of Sluice's Pipeline, PipelineRun and Backfill, read from the
-- conditions the operator keeps for GitOps tools (Ready, Reconciling, Stalled;
-- see docs/gitops.md). Degraded: it cannot go on without someone acting (a
-- failed or cancelled run, an invalid pipeline, a refused API call).
local hs = {}
local status = obj.status
if status == nil or status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Sluice operator"
  return hs
end
local generation = obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the Sluice operator to see generation " .. generation
  return hs
end
local found = {}
for _, c in ipairs(status.conditions) do
  found[c.type] = c
end
local function say(c)
  if c.message ~= nil and c.message ~= "" then
    return c.reason .. ": " .. c.message
  end
  return c.reason
end
if found.Stalled ~= nil and found.Stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = say(found.Stalled)
elseif found.Reconciling ~= nil and found.Reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = say(found.Reconciling)
elseif found.Ready ~= nil and found.Ready.status == "True" then
  hs.status = "Healthy"
  hs.message = say(found.Ready)
  local spec = obj.spec or {}
  if obj.kind == "Pipeline" and spec.schedule ~= nil and spec.schedule.suspend == true then
    hs.status = "Suspended"
    hs.message = "its schedule is suspended"
  end
else
  hs.status = "Progressing"
  hs.message = "Waiting for the Sluice operator"
end
return hs
