-- Argo CD health check for bdr's kinds (bdr.dev: Machine, StorageTarget, RetentionPolicy, Dataset, Vector),
-- with kstatus's reading of status: the generation must be observed; Stalled=True is Degraded, Reconciling=True
-- is Progressing, then Ready decides. Suspension (spec.suspend, or a Suspended=True condition) shows as
-- Suspended. Written for Argo CD's Lua 5.1 (gopher-lua) and tested with lua5.4: no 5.2+ syntax.
local hs = { status = "Progressing", message = "Waiting for the bdr controller to report status" }

local function condition(conditions, kind)
  if conditions == nil then
    return nil
  end
  for _, c in ipairs(conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function describe(c)
  local reason = c.reason or ""
  local message = c.message or ""
  if reason == "" then
    return message
  end
  if message == "" then
    return reason
  end
  return reason .. ": " .. message
end

local status = obj.status
if status == nil then
  return hs
end

local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.message = "Waiting for the bdr controller to observe generation " .. tostring(generation)
  return hs
end

local conditions = status.conditions
local suspended = condition(conditions, "Suspended")
if (obj.spec ~= nil and obj.spec.suspend == true) or (suspended ~= nil and suspended.status == "True") then
  hs.status = "Suspended"
  if suspended ~= nil and suspended.status == "True" then
    hs.message = describe(suspended)
  else
    hs.message = "Suspended: spec.suspend is true"
  end
  return hs
end

local stalled = condition(conditions, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled)
  return hs
end

local reconciling = condition(conditions, "Reconciling")
if reconciling ~= nil and reconciling.status == "True" then
  hs.message = describe(reconciling)
  return hs
end

local ready = condition(conditions, "Ready")
if ready == nil then
  hs.message = "Waiting for the Ready condition"
  return hs
end
if generation ~= nil and ready.observedGeneration ~= nil and ready.observedGeneration < generation then
  hs.message = "Waiting for Ready to describe generation " .. tostring(generation)
  return hs
end
if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready)
elseif ready.status == "False" then
  hs.status = "Degraded"
  hs.message = describe(ready)
else
  hs.message = describe(ready)
end
return hs
