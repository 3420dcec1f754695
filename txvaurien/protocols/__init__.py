"""
Built-in protocol handlers, one per module.

Each module defines classes implementing
L{txvaurien.interfaces.IProtocolHandler} (usually by subclassing
L{txvaurien.protocols.base.ProtocolHandler}); L{txvaurien.registry} finds
them by scanning this package.
"""
