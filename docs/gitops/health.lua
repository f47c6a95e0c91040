-- Argo CD health of an Usher Organisation, Profile or User, read from its kstatus conditions.
-- Healthy: Usher did all it can (Ready=True). Degraded: it cannot go on until something is
-- fixed (Stalled=True; the message says what). Progressing: work under way, or Usher has not
-- yet seen the latest change.
local hs = { status = "Progressing", message = "Waiting for Usher to reconcile" }
if obj.status == nil or obj.status.conditions == nil then
  return hs
end
local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and observed ~= nil and observed < generation then
  hs.message = "Waiting for Usher to see the latest change"
  return hs
end
for _, c in ipairs(obj.status.conditions) do
  if c.type == "Stalled" and c.status == "True" then
    hs.status = "Degraded"
    hs.message = c.message
    return hs
  end
end
for _, c in ipairs(obj.status.conditions) do
  if c.type == "Ready" then
    if c.status == "True" then
      hs.status = "Healthy"
    end
    hs.message = c.message
    return hs
  end
end
return hs
