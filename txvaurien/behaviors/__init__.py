"""
Built-in behaviors, one per module.

Each module defines one or more classes implementing
L{txvaurien.interfaces.IBehavior} (usually by subclassing
L{txvaurien.behaviors.base.Behavior}); L{txvaurien.registry} finds them by
scanning this package, so adding a behavior is adding a module.
"""
