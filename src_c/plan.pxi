# The plan, as C reads it: csockserver._engine.plan's Plan turned into a
# struct of ints, one per hook, once per serve_forever() (or per request
# handed to a worker).  C-only: the pure engine reads the Plan as it is.


cdef HookPlan _all_python     # zeroed: every hook PYTHON
if tuple(<dict>_all_python) != _plan.FIELDS:
    raise ImportError("csockserver._cengine's HookPlan does not match "
                      "csockserver._engine.plan.HOOKS: rebuild the extension")
if ({kind.name: kind.value for kind in _Kind}
        != {kind.name: kind.value for kind in _plan.Kind}):
    raise ImportError("csockserver._cengine's kinds do not match "
                      "csockserver._engine.plan.Kind: rebuild the extension")


cdef HookPlan _read_plan(plan) except *:
    return plan.__dict__
